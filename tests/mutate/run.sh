#!/bin/sh
# Mutation testing of src/: see mutate.py and mutants.txt.
#   tests/mutate/run.sh BUILD_DIR [--only ID,ID] [--timeout S] [--keep]
exec python3 "$(dirname "$0")/mutate.py" "$@"
