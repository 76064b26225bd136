# gs_export: PGXS build.  `make && sudo make install`, then README.md.
#
# The extension is src/: its C (src/*.c) and its SQL (src/sql/, one file
# per object).  The SQL scripts PostgreSQL runs are assembled here from
# those files (CONTRIBUTING.md, "Changing the SQL"):
#   build/gs_export--$(EXTVERSION).sql         the full install, from
#                                              src/sql/install.list
#   build/gs_export--$(PREVVERSION)--$(EXTVERSION).sql
#                                              the upgrade, a short delta,
#                                              from src/sql/update.list
# The scripts of released versions are frozen in src/sql/frozen/ and
# installed as they are.
#
# Tests: `make installcheck` runs the pg_regress suite (sql/, expected/) on
# a temporary server of its own (it needs gs_export preloaded); run it as a
# user PostgreSQL accepts (not root) after `make install`.  Every suite:
# tools/test (README.md).

EXTENSION = gs_export
EXTVERSION = 1.2
PREVVERSION = 1.1
MODULE_big = gs_export
OBJS = \
	src/gs_export.o \
	src/shmem.o \
	src/catalog.o \
	src/api.o \
	src/capture.o \
	src/launcher.o \
	src/worker.o \
	src/job.o \
	src/source.o \
	src/payload.o \
	src/remote.o \
	src/verify.o \
	src/pace.o \
	src/store.o \
	src/alert.o \
	src/scrub.o \
	src/curl_util.o \
	src/check.o
PGFILEDESC = "gs_export - export of leads to a PostgREST remote"

DATA = \
	src/sql/frozen/gs_export--1.0.sql \
	src/sql/frozen/gs_export--1.0--1.1.sql
DATA_built = \
	build/gs_export--$(EXTVERSION).sql \
	build/gs_export--$(PREVVERSION)--$(EXTVERSION).sql
EXTRA_CLEAN = build results regression.diffs regression.out tmp_check

# pg_regress: the SQL API, on a temporary instance that preloads gs_export
REGRESS = install api_errors api_states api_options fresh_install rls_cost \
	api_mapping install_later api_reset_delete_status api_sync api_pace \
	api_hardening api_follow api_check api_proof
REGRESS_OPTS = --temp-instance=tmp_check --temp-config=test/regress.conf \
	--dbname=contrib_regression

# Warnings: PGXS's -Wall and more; GS_WERROR=1 makes them errors (tools/
# build-install, CI).
PG_CFLAGS = -Wextra -Wno-unused-parameter -Wno-sign-compare \
	-Wno-missing-field-initializers
ifdef GS_WERROR
PG_CFLAGS += -Werror
endif
PG_CPPFLAGS = -I$(srcdir)/src $(shell pkg-config --cflags json-c) $(shell curl-config --cflags)
SHLIB_LINK = $(shell pkg-config --libs json-c) $(shell curl-config --libs)

PG_CONFIG ?= pg_config
PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

# Every object depends on the shared headers (PGXS tracks no headers).
$(OBJS): $(wildcard src/*.h)

# The SQL scripts: the files a list names, in its order (# starts a
# comment), each under a line that says where it comes from.
sql_list = $(addprefix src/sql/,$(shell sed -e 's/\#.*//' $(1)))
INSTALL_SQL := $(call sql_list,src/sql/install.list)
UPDATE_SQL := $(call sql_list,src/sql/update.list)

define assemble_sql
	@mkdir -p build
	@{ printf '%s\n' '/*' ' * $(notdir $@): assembled by the Makefile from src/sql/$(1);' \
	    ' * do not edit: edit the files it names.' ' */' '' '$(subst ','\'',$(2))'; \
	  for f in $^; do case $$f in *.list) continue;; esac; \
	    printf '\n-- ---- %s\n\n' "$$f"; cat "$$f"; done; } > $@.tmp
	@mv $@.tmp $@
endef

build/gs_export--$(EXTVERSION).sql: src/sql/install.list $(INSTALL_SQL)
	$(call assemble_sql,install.list,\echo Use "CREATE EXTENSION gs_export" to load this file. \quit)

build/gs_export--$(PREVVERSION)--$(EXTVERSION).sql: src/sql/update.list $(UPDATE_SQL)
	$(call assemble_sql,update.list,\echo Use "ALTER EXTENSION gs_export UPDATE TO '$(EXTVERSION)'" to load this file. \quit)

# The pg_regress tests, for test/run.sh.
print-regress:
	@echo $(REGRESS)
.PHONY: print-regress
