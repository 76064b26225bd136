/*-------------------------------------------------------------------------
 *
 * catalog.c
 *	  Looks up gs_export's own row of pg_extension in the current database:
 *	  the schema its tables live in, the role that owns it, its version.
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
 * Read gs_export's row of pg_extension: its schema, owner and version
 * (palloc'd), each if asked for.  False when it is not installed here.
 * Needs a transaction.
 */
static bool
extension_row(Oid *nspoid, Oid *owner, char **version)
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
		if (version)
		{
			bool		isnull;
			Datum		d = heap_getattr(tuple, Anum_pg_extension_extversion,
										 RelationGetDescr(rel), &isnull);

			*version = isnull ? NULL : TextDatumGetCString(d);
		}
		found = true;
	}
	systable_endscan(scan);
	table_close(rel, AccessShareLock);
	return found;
}

/*
 * The extension's schema and owner; false when it is not installed here.
 */
bool
gs_extension_lookup(Oid *nspoid, Oid *owner)
{
	return extension_row(nspoid, owner, NULL);
}

/*
 * The installed version of the extension (palloc'd), or NULL when it is not
 * installed here.
 */
char *
gs_extension_version(void)
{
	char	   *version = NULL;

	(void) extension_row(NULL, NULL, &version);
	return version;
}
