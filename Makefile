# gs_export: PGXS build.  `make && make install`, then see README.md.
MODULE_big = gs_export
OBJS = \
	src/gs_export.o \
	src/shmem.o \
	src/catalog.o \
	src/api.o \
	src/launcher.o \
	src/worker.o \
	src/job.o \
	src/source.o \
	src/payload.o \
	src/remote.o \
	src/pace.o \
	src/store.o \
	src/alert.o \
	src/curl_util.o

EXTENSION = gs_export
DATA = sql/gs_export--1.0.sql sql/gs_export--1.0--1.1.sql
PGFILEDESC = "gs_export - batch export of leads to a PostgREST remote"

PG_CPPFLAGS = -I$(srcdir)/src $(shell pkg-config --cflags json-c) $(shell curl-config --cflags)
SHLIB_LINK = $(shell pkg-config --libs json-c) $(shell curl-config --libs)

PG_CONFIG ?= pg_config
PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

# Every object depends on the shared header (PGXS tracks no headers).
$(OBJS): src/gs_export.h src/gs_curl.h src/gs_limits.h
