#!/bin/sh
# usmc-run --check-policy: a good file passes, each wrong statement is named
# with its line, and the exit status tells which.
set -eu
run=$1
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT

cat >"$dir/good" <<'P'
# comments; with a ';' inside
tcp 10.0.0.0/8            # straight to TCP
smc 127.0.0.1:8000-8999; tcp [::1]:22
allow-user 0
P
out=$("$run" --check-policy "$dir/good")
echo "$out"
[ "$out" = "$dir/good: 3 rules, 1 allowed user, 0 errors" ]

printf 'tcp 10.0.0.0/8\nsmc 300.1.2.3\n\ntcp *:0; allow-user no-such-user-here\n' >"$dir/bad"
if "$run" --check-policy "$dir/bad" >"$dir/out" 2>"$dir/err"; then
	echo "a wrong policy passed"; exit 1
fi
cat "$dir/out" "$dir/err"
grep -q "line 2: not a rule.*'smc 300.1.2.3'" "$dir/err"
grep -q "line 4: not a rule.*'tcp \*:0'" "$dir/err"
grep -q "line 4: unknown user: 'no-such-user-here'" "$dir/err"
grep -q "1 rule, 0 allowed users, 3 errors" "$dir/out"

# Standard input, and a usage error's status.
printf 'tcp *:5432\n' | "$run" --check-policy - | grep -q "1 rule"
set +e
"$run" --check-policy >/dev/null 2>&1
[ $? -eq 2 ] || { echo "usage error should exit 2"; exit 1; }
"$run" --check-policy "$dir/missing" 2>/dev/null
[ $? -eq 1 ] || { echo "a missing file should exit 1"; exit 1; }
echo "policy_check: ok"
