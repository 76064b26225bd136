/*-------------------------------------------------------------------------
 *
 * catalog.c
 *	  Looks up gs_export's own row of pg_extension in the current database:
 *	  the schema its tables live in and the role that owns it.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "catalog/indexing.h"
#include "catalog/pg_extension.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"

#include "gs_export.h"

/*
 * The extension's schema and owner; false when it is not installed here.
 * Needs a transaction.
 */
bool
gs_extension_lookup(Oid *nspoid, Oid *owner)
{
	Relation	rel;
	ScanKeyData key;
	SysScanDesc scan;
	HeapTuple	tuple;
	bool		found = false;

	rel = table_open(ExtensionRelationId, AccessShareLock);
	ScanKeyInit(&key, Anum_pg_extension_extname, BTEqualStrategyNumber,
				F_NAMEEQ, CStringGetDatum("gs_export"));
	scan = systable_beginscan(rel, ExtensionNameIndexId, true, NULL, 1, &key);
	tuple = systable_getnext(scan);
	if (HeapTupleIsValid(tuple))
	{
		Form_pg_extension ext = (Form_pg_extension) GETSTRUCT(tuple);

		if (nspoid)
			*nspoid = ext->extnamespace;
		if (owner)
			*owner = ext->extowner;
		found = true;
	}
	systable_endscan(scan);
	table_close(rel, AccessShareLock);
	return found;
}

/*
 * The extension's schema as a quoted identifier (palloc'd), or NULL.
 */
char *
gs_extension_schema_quoted(void)
{
	Oid			nspoid;

	if (!gs_extension_lookup(&nspoid, NULL))
		return NULL;
	return pstrdup(quote_identifier(get_namespace_name(nspoid)));
}
