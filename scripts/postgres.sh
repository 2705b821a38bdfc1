# Sourced by scripts/test: make PostgreSQL's server programs available for the Postgres tests.
# The tests start a throwaway server themselves (tests/integration/test_postgres.py). Where the programs
# are missing and this runs as root with apt-get (CI machines), Debian's postgresql is installed. Once the
# programs are there, MMSEARCH_REQUIRE_POSTGRES=1 makes a server that fails to start a test failure, not a skip.
_mmsearch_have_pg() {
  command -v initdb >/dev/null 2>&1 || compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null
}
if ! _mmsearch_have_pg && [[ "$(id -u)" == 0 ]] && command -v apt-get >/dev/null 2>&1; then
  echo "mmsearch: installing PostgreSQL (Debian's postgresql) for the tests" >&2
  if ! { DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postgresql >/dev/null 2>&1 ||
         { apt-get update -qq >/dev/null 2>&1 &&
           DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postgresql >/dev/null; }; }; then
    echo "mmsearch: could not install postgresql; the PostgreSQL tests will be skipped" >&2
  fi
fi
if _mmsearch_have_pg; then
  export MMSEARCH_REQUIRE_POSTGRES=1
fi
unset -f _mmsearch_have_pg
