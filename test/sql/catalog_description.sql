-- catalog_description.sql: everything gs_export owns or touches in the
-- current database, one fact per line, sorted, by names (never OIDs), so
-- that two databases can be compared line by line (test/t/050_upgrade.pl:
-- a 1.0 install upgraded with ALTER EXTENSION gs_export UPDATE against a
-- fresh CREATE EXTENSION gs_export).
--
-- Covered: the extension (version, schema, owner, extconfig/extcondition)
-- and its members; the extension's schema and its ACL; every function of
-- that schema (and any member function elsewhere): signature, result,
-- arguments with defaults, language, volatility, security definer,
-- strictness, settings, owner, a digest of the body, membership, ACL,
-- comment; every relation of that schema (and any member relation
-- elsewhere): kind, owner, row level security enabled/forced, replica
-- identity, membership, ACL, columns (type, default, not null, identity,
-- generated, collation, column ACL), constraints, indexes, triggers,
-- policies, rules, view definitions, publications, comments; types of the
-- schema (enums, domains, composites); the roles gs_export_user and
-- gs_export_admin, their memberships and settings; default privileges;
-- event triggers.
--
-- Names come out schema-qualified (search_path is pg_catalog only), ACLs
-- are expanded with aclexplode (a NULL ACL as the default one), and
-- expressions and definitions have their whitespace folded to one line.
SET search_path = pg_catalog, pg_temp;

WITH ext AS (
    SELECT e.oid, e.extname, e.extversion, e.extnamespace, e.extrelocatable,
           e.extowner, e.extconfig, e.extcondition
      FROM pg_extension e
     WHERE e.extname = 'gs_export'
),
member AS (
    SELECT d.classid, d.objid, d.objsubid
      FROM pg_depend d
      JOIN ext ON d.refobjid = ext.oid
     WHERE d.refclassid = 'pg_extension'::regclass
       AND d.deptype = 'e'
),
rel AS (
    SELECT c.oid, c.oid::regclass::text AS name, c.relkind, c.relowner, c.relacl,
           c.relrowsecurity, c.relforcerowsecurity, c.relpersistence,
           c.relreplident, c.reloptions,
           c.oid IN (SELECT objid FROM member WHERE classid = 'pg_class'::regclass) AS is_member
      FROM pg_class c
     WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S')
       AND (c.relnamespace IN (SELECT extnamespace FROM ext)
            OR c.oid IN (SELECT objid FROM member WHERE classid = 'pg_class'::regclass))
),
fn AS (
    SELECT p.oid, p.proname, p.prokind, p.proowner, p.proacl, p.prolang,
           p.provolatile, p.prosecdef, p.proisstrict, p.proleakproof,
           p.proparallel, p.proconfig, p.procost, p.prorows, p.prosrc, p.probin,
           quote_ident(p.pronamespace::regnamespace::text) || '.' || quote_ident(p.proname)
               || '(' || pg_get_function_identity_arguments(p.oid) || ')' AS sig,
           p.oid IN (SELECT objid FROM member WHERE classid = 'pg_proc'::regclass) AS is_member
      FROM pg_proc p
     WHERE p.pronamespace IN (SELECT extnamespace FROM ext)
        OR p.oid IN (SELECT objid FROM member WHERE classid = 'pg_proc'::regclass)
),
ty AS (
    SELECT t.oid, format_type(t.oid, NULL) AS name, t.typtype, t.typowner,
           t.typrelid, t.typbasetype, t.typtypmod, t.typnotnull, t.typdefault, t.typacl,
           t.oid IN (SELECT objid FROM member WHERE classid = 'pg_type'::regclass) AS is_member
      FROM pg_type t
     WHERE (t.typnamespace IN (SELECT extnamespace FROM ext)
            OR t.oid IN (SELECT objid FROM member WHERE classid = 'pg_type'::regclass))
       -- not array types, not the row types of tables and views
       AND NOT EXISTS (SELECT 1 FROM pg_type e WHERE e.typarray = t.oid)
       AND (t.typrelid = 0
            OR (SELECT c.relkind FROM pg_class c WHERE c.oid = t.typrelid) = 'c')
),
gs_role AS (
    SELECT r.* FROM pg_roles r
     WHERE r.rolname IN ('gs_export_user', 'gs_export_admin')
),
lines(line) AS (
    -- the extension
    SELECT format('extension %s version=%s schema=%s relocatable=%s owner=%s',
                  ext.extname, ext.extversion, ext.extnamespace::regnamespace,
                  ext.extrelocatable, pg_get_userbyid(ext.extowner))
      FROM ext
    UNION ALL
    SELECT format('extension config %s condition=%L', c.tab::regclass, c.cond)
      FROM ext, unnest(ext.extconfig, ext.extcondition) AS c(tab, cond)
    UNION ALL
    SELECT format('member %s', pg_describe_object(m.classid, m.objid, m.objsubid))
      FROM member m

    -- the extension's schema
    UNION ALL
    SELECT format('schema %s owner=%s', n.nspname, pg_get_userbyid(n.nspowner))
      FROM pg_namespace n WHERE n.oid IN (SELECT extnamespace FROM ext)
    UNION ALL
    SELECT format('schema %s acl %s %s%s by %s', n.nspname,
                  CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE pg_get_userbyid(a.grantee) END,
                  a.privilege_type, CASE WHEN a.is_grantable THEN ' grantable' ELSE '' END,
                  pg_get_userbyid(a.grantor))
      FROM pg_namespace n, aclexplode(coalesce(n.nspacl, acldefault('n', n.nspowner))) a
     WHERE n.oid IN (SELECT extnamespace FROM ext)

    -- functions
    UNION ALL
    SELECT format('function %s kind=%s returns=%s args=%s lang=%s volatility=%s secdef=%s strict=%s'
                  ' leakproof=%s parallel=%s cost=%s rows=%s config=%s owner=%s member=%s body=%s bin=%s',
                  f.sig, f.prokind, coalesce(pg_get_function_result(f.oid), '-'),
                  pg_get_function_arguments(f.oid), l.lanname, f.provolatile, f.prosecdef,
                  f.proisstrict, f.proleakproof, f.proparallel, f.procost, f.prorows,
                  coalesce((SELECT string_agg(s, ',' ORDER BY s COLLATE "C") FROM unnest(f.proconfig) s), '-'),
                  pg_get_userbyid(f.proowner), f.is_member,
                  md5(coalesce(f.prosrc, '') || coalesce(pg_get_function_sqlbody(f.oid), '')),
                  coalesce(f.probin, '-'))
      FROM fn f JOIN pg_language l ON l.oid = f.prolang
    UNION ALL
    SELECT format('function %s acl %s %s%s by %s', f.sig,
                  CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE pg_get_userbyid(a.grantee) END,
                  a.privilege_type, CASE WHEN a.is_grantable THEN ' grantable' ELSE '' END,
                  pg_get_userbyid(a.grantor))
      FROM fn f, aclexplode(coalesce(f.proacl, acldefault('f', f.proowner))) a
    UNION ALL
    SELECT format('function %s comment %s', f.sig,
                  regexp_replace(obj_description(f.oid, 'pg_proc'), '\s+', ' ', 'g'))
      FROM fn f WHERE obj_description(f.oid, 'pg_proc') IS NOT NULL

    -- relations
    UNION ALL
    SELECT format('relation %s kind=%s owner=%s rls=%s force_rls=%s persistence=%s replident=%s'
                  ' options=%s member=%s',
                  r.name, r.relkind, pg_get_userbyid(r.relowner), r.relrowsecurity,
                  r.relforcerowsecurity, r.relpersistence, r.relreplident,
                  coalesce(array_to_string(r.reloptions, ','), '-'), r.is_member)
      FROM rel r
    UNION ALL
    SELECT format('relation %s acl %s %s%s by %s', r.name,
                  CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE pg_get_userbyid(a.grantee) END,
                  a.privilege_type, CASE WHEN a.is_grantable THEN ' grantable' ELSE '' END,
                  pg_get_userbyid(a.grantor))
      FROM rel r,
           aclexplode(coalesce(r.relacl,
                               acldefault(CASE WHEN r.relkind = 'S' THEN 's' ELSE 'r' END::"char",
                                          r.relowner))) a
    UNION ALL
    SELECT format('relation %s comment %s', r.name,
                  regexp_replace(obj_description(r.oid, 'pg_class'), '\s+', ' ', 'g'))
      FROM rel r WHERE obj_description(r.oid, 'pg_class') IS NOT NULL
    UNION ALL
    SELECT format('column %s.%s type=%s notnull=%s default=%s identity=%s generated=%s collation=%s',
                  r.name, quote_ident(a.attname), format_type(a.atttypid, a.atttypmod),
                  a.attnotnull,
                  coalesce(regexp_replace(pg_get_expr(ad.adbin, ad.adrelid), '\s+', ' ', 'g'), '-'),
                  CASE WHEN a.attidentity = '' THEN '-' ELSE a.attidentity::text END,
                  CASE WHEN a.attgenerated = '' THEN '-' ELSE a.attgenerated::text END,
                  coalesce((SELECT co.collname FROM pg_collation co WHERE co.oid = a.attcollation), '-'))
      FROM rel r
      JOIN pg_attribute a ON a.attrelid = r.oid AND a.attnum > 0 AND NOT a.attisdropped
      LEFT JOIN pg_attrdef ad ON ad.adrelid = a.attrelid AND ad.adnum = a.attnum
    UNION ALL
    SELECT format('column %s.%s acl %s %s%s by %s', r.name, quote_ident(a.attname),
                  CASE WHEN x.grantee = 0 THEN 'PUBLIC' ELSE pg_get_userbyid(x.grantee) END,
                  x.privilege_type, CASE WHEN x.is_grantable THEN ' grantable' ELSE '' END,
                  pg_get_userbyid(x.grantor))
      FROM rel r
      JOIN pg_attribute a ON a.attrelid = r.oid AND a.attnum > 0 AND NOT a.attisdropped,
           aclexplode(a.attacl) x
    UNION ALL
    SELECT format('column %s.%s comment %s', r.name, quote_ident(a.attname),
                  regexp_replace(col_description(r.oid, a.attnum), '\s+', ' ', 'g'))
      FROM rel r
      JOIN pg_attribute a ON a.attrelid = r.oid AND a.attnum > 0 AND NOT a.attisdropped
     WHERE col_description(r.oid, a.attnum) IS NOT NULL
    UNION ALL
    SELECT format('constraint %s %s %s', r.name, quote_ident(c.conname),
                  regexp_replace(pg_get_constraintdef(c.oid), '\s+', ' ', 'g'))
      FROM rel r JOIN pg_constraint c ON c.conrelid = r.oid
    UNION ALL
    SELECT format('index %s %s valid=%s clustered=%s replident=%s', r.name,
                  pg_get_indexdef(i.indexrelid), i.indisvalid, i.indisclustered, i.indisreplident)
      FROM rel r JOIN pg_index i ON i.indrelid = r.oid
    UNION ALL
    SELECT format('trigger %s %s enabled=%s', r.name,
                  regexp_replace(pg_get_triggerdef(t.oid), '\s+', ' ', 'g'), t.tgenabled)
      FROM rel r JOIN pg_trigger t ON t.tgrelid = r.oid
     WHERE NOT t.tgisinternal
    UNION ALL
    SELECT format('policy %s %s permissive=%s cmd=%s roles=%s using=%s check=%s', r.name,
                  quote_ident(p.polname), p.polpermissive, p.polcmd,
                  (SELECT string_agg(n, ',' ORDER BY n COLLATE "C")
                     FROM (SELECT CASE WHEN x = 0 THEN 'PUBLIC' ELSE pg_get_userbyid(x) END AS n
                             FROM unnest(p.polroles) x) s),
                  coalesce(regexp_replace(pg_get_expr(p.polqual, p.polrelid), '\s+', ' ', 'g'), '-'),
                  coalesce(regexp_replace(pg_get_expr(p.polwithcheck, p.polrelid), '\s+', ' ', 'g'), '-'))
      FROM rel r JOIN pg_policy p ON p.polrelid = r.oid
    UNION ALL
    SELECT format('rule %s %s %s', r.name, quote_ident(rw.rulename),
                  regexp_replace(pg_get_ruledef(rw.oid), '\s+', ' ', 'g'))
      FROM rel r JOIN pg_rewrite rw ON rw.ev_class = r.oid
     WHERE rw.rulename <> '_RETURN'
    UNION ALL
    SELECT format('view %s %s', r.name, regexp_replace(pg_get_viewdef(r.oid), '\s+', ' ', 'g'))
      FROM rel r WHERE r.relkind IN ('v', 'm')
    UNION ALL
    SELECT format('sequence %s type=%s start=%s increment=%s min=%s max=%s cycle=%s', r.name,
                  format_type(s.seqtypid, NULL), s.seqstart, s.seqincrement, s.seqmin, s.seqmax,
                  s.seqcycle)
      FROM rel r JOIN pg_sequence s ON s.seqrelid = r.oid
    UNION ALL
    SELECT format('publication %s alltables=%s insert=%s update=%s delete=%s truncate=%s',
                  p.pubname, p.puballtables, p.pubinsert, p.pubupdate, p.pubdelete, p.pubtruncate)
      FROM pg_publication p
    UNION ALL
    SELECT format('publication %s table %s', p.pubname, r.name)
      FROM pg_publication_rel pr
      JOIN pg_publication p ON p.oid = pr.prpubid
      JOIN rel r ON r.oid = pr.prrelid

    -- types
    UNION ALL
    SELECT format('type %s kind=%s owner=%s member=%s', t.name, t.typtype,
                  pg_get_userbyid(t.typowner), t.is_member)
      FROM ty t
    UNION ALL
    SELECT format('type %s label %s %s', t.name,
                  rank() OVER (PARTITION BY t.oid ORDER BY e.enumsortorder), e.enumlabel)
      FROM ty t JOIN pg_enum e ON e.enumtypid = t.oid
    UNION ALL
    SELECT format('type %s attribute %s %s', t.name, quote_ident(a.attname),
                  format_type(a.atttypid, a.atttypmod))
      FROM ty t
      JOIN pg_attribute a ON a.attrelid = t.typrelid AND a.attnum > 0 AND NOT a.attisdropped
     WHERE t.typrelid <> 0
    UNION ALL
    SELECT format('type %s domain base=%s notnull=%s default=%s', t.name,
                  format_type(t.typbasetype, t.typtypmod), t.typnotnull, coalesce(t.typdefault, '-'))
      FROM ty t WHERE t.typtype = 'd'
    UNION ALL
    SELECT format('type %s constraint %s %s', t.name, quote_ident(c.conname),
                  regexp_replace(pg_get_constraintdef(c.oid), '\s+', ' ', 'g'))
      FROM ty t JOIN pg_constraint c ON c.contypid = t.oid
    UNION ALL
    SELECT format('type %s acl %s %s%s by %s', t.name,
                  CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE pg_get_userbyid(a.grantee) END,
                  a.privilege_type, CASE WHEN a.is_grantable THEN ' grantable' ELSE '' END,
                  pg_get_userbyid(a.grantor))
      FROM ty t, aclexplode(coalesce(t.typacl, acldefault('T', t.typowner))) a

    -- roles
    UNION ALL
    SELECT format('role %s super=%s inherit=%s createrole=%s createdb=%s login=%s replication=%s'
                  ' bypassrls=%s connlimit=%s',
                  r.rolname, r.rolsuper, r.rolinherit, r.rolcreaterole, r.rolcreatedb,
                  r.rolcanlogin, r.rolreplication, r.rolbypassrls, r.rolconnlimit)
      FROM gs_role r
    UNION ALL
    SELECT format('role membership %s member=%s admin=%s grantor=%s',
                  pg_get_userbyid(m.roleid), pg_get_userbyid(m.member), m.admin_option,
                  pg_get_userbyid(m.grantor))
      FROM pg_auth_members m
     WHERE m.roleid IN (SELECT oid FROM gs_role) OR m.member IN (SELECT oid FROM gs_role)
    UNION ALL
    SELECT format('role setting %s database=%s %s', pg_get_userbyid(s.setrole),
                  CASE WHEN s.setdatabase = 0 THEN 'all' ELSE 'this' END,
                  array_to_string(s.setconfig, ','))
      FROM pg_db_role_setting s
     WHERE s.setrole IN (SELECT oid FROM gs_role)
       AND s.setdatabase IN (0, (SELECT d.oid FROM pg_database d WHERE d.datname = current_database()))

    -- default privileges, event triggers
    UNION ALL
    SELECT format('default acl owner=%s schema=%s objtype=%s %s %s%s by %s',
                  pg_get_userbyid(d.defaclrole), d.defaclnamespace::regnamespace, d.defaclobjtype,
                  CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE pg_get_userbyid(a.grantee) END,
                  a.privilege_type, CASE WHEN a.is_grantable THEN ' grantable' ELSE '' END,
                  pg_get_userbyid(a.grantor))
      FROM pg_default_acl d, aclexplode(d.defaclacl) a
    UNION ALL
    SELECT format('event trigger %s event=%s function=%s enabled=%s tags=%s', e.evtname, e.evtevent,
                  e.evtfoid::regprocedure, e.evtenabled, coalesce(array_to_string(e.evttags, ','), '-'))
      FROM pg_event_trigger e
)
SELECT line FROM lines ORDER BY line COLLATE "C";
