#!/bin/sh
# mod_fcgid wrapper for remod (see remo-fcgid.conf). Install executable, e.g.
# /usr/local/lib/remo/remod.fcgi, readable and executable by www-data.
#
# Template placeholder:
#   @REMOD@  the remod binary, e.g. /usr/local/bin/remod
#
# With neither --http nor --fcgi, `remod serve` serves the listening socket
# mod_fcgid passes on fd 0. Its settings come from FcgidInitialEnv.
exec @REMOD@ serve
