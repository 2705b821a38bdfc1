# Sourced by scripts/test: make Chromium and its WebDriver available for the browser tests of the web app.
# The tests drive Debian's `chromium` through `chromium-driver` with Selenium (a browser download cannot work
# offline). Where they are missing and this runs as root with apt-get (CI machines), they are installed. Once they
# are there, MMSEARCH_REQUIRE_CHROMIUM=1 makes a browser that fails to start a test failure, not a skip.
_mmsearch_have_chromium() {
  command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1
}
if ! _mmsearch_have_chromium && [[ "$(id -u)" == 0 ]] && command -v apt-get >/dev/null 2>&1; then
  echo "mmsearch: installing Chromium (Debian's chromium, chromium-driver) for the browser tests" >&2
  if ! { DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium chromium-driver >/dev/null 2>&1 ||
         { apt-get update -qq >/dev/null 2>&1 &&
           DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium chromium-driver >/dev/null; }; }; then
    echo "mmsearch: could not install chromium; the browser tests will be skipped" >&2
  fi
fi
if _mmsearch_have_chromium; then
  export MMSEARCH_REQUIRE_CHROMIUM=1
fi
unset -f _mmsearch_have_chromium
