--
-- rls_cost: row level security on the jobs, errors and sync_events tables
-- costs a few function calls per query, not one per row (README, "Security"
-- and "Monitoring").  1.0's policies called a plpgsql function for every row
-- (for errors and sync_events, one that queried the jobs table each time):
-- a job's owner counting its sync_events paid per event.  For a job owned
-- by a gs_export_user member, with thousands of sync_events and errors
-- rows, this shows with track_functions = 'all' that the owner's queries
-- call gs_export's functions a fixed number of times, and that every viewer
-- (the owner, another user, an admin, an app admin, Supabase users, a role
-- outside gs_export) sees exactly the rows 1.0's policies showed it.
--
-- Twice: in a fresh install, where sync_events is gs_export's own table,
-- and over TabuladorMax's tables, where sync_events is the app's, with row
-- level security of its own and gs_export's restrictive policy.  Each in a
-- database of its own, which no launcher watches.
--
\set SHOW_CONTEXT never
SET client_min_messages = warning;
\getenv abs_srcdir PG_ABS_SRCDIR
\set body_sql :abs_srcdir '/test/regress_setup/rls_cost_body.sql'
\set tabuladormax_sql :abs_srcdir '/test/sql/tabuladormax.sql'

CREATE ROLE regress_rls_owner;     -- a user: owns the job measured
CREATE ROLE regress_rls_other;     -- another user
CREATE ROLE regress_rls_admin;     -- gs_export_admin
CREATE ROLE regress_rls_app;       -- the role a Supabase app's users share
CREATE ROLE regress_rls_outsider;  -- no gs_export role, but SELECT granted

--
-- 1. A fresh install: sync_events is gs_export's, with its own policy.
--
CREATE DATABASE regress_gs_rls_fresh;
\c regress_gs_rls_fresh
SET client_min_messages = warning;
CREATE TABLE public.leads (id bigint PRIMARY KEY, updated_at timestamptz);
CREATE INDEX ON public.leads (updated_at, id);
CREATE EXTENSION gs_export;
-- (the roles gs_export_user and gs_export_admin exist from here on)
GRANT gs_export_user TO regress_rls_owner, regress_rls_other, regress_rls_app;
GRANT gs_export_admin TO regress_rls_admin;
\i :body_sql
\c contrib_regression
DROP DATABASE regress_gs_rls_fresh;

--
-- 2. TabuladorMax's tables, sync_events with the app's row level security:
-- gs_export's policy on it is restrictive.
--
CREATE DATABASE regress_gs_rls_tabuladormax;
\c regress_gs_rls_tabuladormax
SET client_min_messages = warning;
\set ECHO none
\i :tabuladormax_sql
\set ECHO all
CREATE INDEX ON public.leads (updated_at, id);
ALTER TABLE public.sync_events ENABLE ROW LEVEL SECURITY;
CREATE POLICY "the app shows its sync log" ON public.sync_events FOR SELECT USING (true);
GRANT SELECT ON public.sync_events TO regress_rls_owner, regress_rls_other, regress_rls_admin,
                                      regress_rls_app;
CREATE EXTENSION gs_export;
\i :body_sql
\c contrib_regression
DROP DATABASE regress_gs_rls_tabuladormax;

DROP ROLE regress_rls_owner, regress_rls_other, regress_rls_admin, regress_rls_app,
          regress_rls_outsider;
