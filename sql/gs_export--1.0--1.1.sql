/*
 * gs_export--1.0--1.1.sql: from 1.0 to 1.1.  A fresh CREATE EXTENSION runs
 * gs_export--1.0.sql and then this file, so that a fresh install and an
 * upgraded one are made by the same statements.  Every change to the SQL
 * from 1.0 on goes here (and later versions ship their own script).
 *
 * Sections:
 *   1. Jobs table: what the 1.1 state machine keeps.
 *   2. One active job, kept by a unique index.
 *   3. The job's state machine, as the workers drive it.
 *   4. The SQL API's internal functions.
 *   5. Row level security.
 *   6. Privileges.
 */

\echo Use "ALTER EXTENSION gs_export UPDATE TO '1.1'" to load this file. \quit

/* ---- 1. Jobs table ----------------------------------------------------- */

/* ---- 2. One active job -------------------------------------------------- */

/* ---- 3. The job's state machine ---------------------------------------- */

/* ---- 4. The SQL API's internal functions -------------------------------- */

/* ---- 5. Row level security ---------------------------------------------- */

/* ---- 6. Privileges ------------------------------------------------------ */
