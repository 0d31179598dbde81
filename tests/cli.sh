#!/bin/sh
# SPDX-License-Identifier: MIT
#
# The command-line conventions every usmc tool keeps: --help on standard
# output with status 0, --version as "NAME (usmc) VERSION", and a usage
# error as one line on standard error, naming what was wrong, status 2.
#
# usage: cli.sh TOOL...    (paths of built tools; each is checked by its name)

failures=0
tmp=$(mktemp -d) || exit 1
trap 'rm -rf "$tmp"' EXIT

fail() {
	echo "FAIL: $*" >&2
	failures=$((failures + 1))
}

# usage_error PATTERN TOOL ARGS...: status 2, nothing on standard output,
# one line on standard error that starts with the tool's name and matches.
usage_error() {
	pattern=$1
	shift
	"$@" > "$tmp/out" 2> "$tmp/err"
	rc=$?
	[ "$rc" = 2 ] || fail "$*: exit $rc, not 2: $(cat "$tmp/err")"
	[ ! -s "$tmp/out" ] || fail "$*: wrote to standard output: $(head -n 3 "$tmp/out")"
	[ "$(wc -l < "$tmp/err")" = 1 ] || fail "$*: not one line on standard error: $(cat "$tmp/err")"
	grep -q -- "^$name: .*$pattern" "$tmp/err" || fail "$*: '$pattern' not said: $(cat "$tmp/err")"
}

# What every tool does.
common() {
	"$tool" --help > "$tmp/out" 2> "$tmp/err"
	rc=$?
	[ "$rc" = 0 ] || fail "$name --help: exit $rc"
	grep -q "^usage: $name" "$tmp/out" || fail "$name --help: no usage line on standard output"
	[ ! -s "$tmp/err" ] || fail "$name --help: wrote to standard error"

	"$tool" --version > "$tmp/out" 2> "$tmp/err"
	rc=$?
	[ "$rc" = 0 ] || fail "$name --version: exit $rc"
	grep -Eqx "$name \(usmc\) [0-9]+\.[0-9]+\.[0-9]+.*" "$tmp/out" ||
		fail "$name --version: '$(cat "$tmp/out")'"
	[ "$(wc -l < "$tmp/out")" = 1 ] || fail "$name --version: not one line"

	usage_error "--no-such-option" "$tool" --no-such-option
	usage_error "-Z" "$tool" -Z
}

check_usmc_run() {
	usage_error "--check-policy needs a value" "$tool" --check-policy
	usage_error "--enable needs a value" "$tool" --enable
	usage_error "--enable takes one UNIT and nothing else" "$tool" --enable a b
	usage_error "'a/b' is not a unit name" "$tool" --disable a/b
}

check_usmc_stat() {
	usage_error "--port: '0' is out of range" "$tool" --port 0
	usage_error "--mode: 'rdma' is not" "$tool" --mode rdma
	usage_error "--reset goes with -s" "$tool" --reset
	usage_error "--interval: 'soon' is not a number" "$tool" -i soon
}

check_usmc_bench() {
	usage_error "--runs: 'x' is not a number$" "$tool" --runs x
	usage_error "--runs: '0' is out of range" "$tool" --runs 0
	usage_error "--runs: '65' is out of range" "$tool" --runs 65
	usage_error "--runs: '3x' is not a number" "$tool" --runs=3x
	usage_error "--duration: 'abc' is not a number" "$tool" --duration abc
	usage_error "--duration: '0' is out of range" "$tool" --duration 0
	usage_error "--tests: unknown name 'nosuchtest'" "$tool" --tests stream,nosuchtest
	usage_error "--tests: ',' names nothing" "$tool" --tests ,
	usage_error "--transports: unknown name 'carrier-pigeon'" "$tool" --transports carrier-pigeon
	usage_error "--runs needs a value" "$tool" --runs
	usage_error "--verify takes no value" "$tool" --verify=yes
	usage_error "unexpected stray" "$tool" --quick stray
}

check_usmc_kernel() {
	usage_error "unknown command bogus" "$tool" bogus
	usage_error "enable needs --cgroup" "$tool" enable
	usage_error "disable needs --cgroup" "$tool" disable
	usage_error "disable --all takes no selectors" "$tool" disable --all --pid 1
	usage_error "enable takes no --all" "$tool" enable --all
	usage_error "--pid: 'x' is not a number$" "$tool" enable --pid x
	usage_error "--pid: '0' is out of range" "$tool" disable --pid 0
	usage_error "--pid needs a value" "$tool" enable --pid
	usage_error "--comm: 'abcdefghijklmnopq' is not a command name" "$tool" enable --comm abcdefghijklmnopq
	usage_error "enable: unexpected stray" "$tool" enable --comm x stray
	usage_error "status takes no arguments" "$tool" status extra
	usage_error "policy needs add, del, set, show or clear" "$tool" policy
	usage_error "policy add: not a rule: 'tcp 10.0.0.0/33'" "$tool" policy add "tcp 10.0.0.0/33"
	usage_error "policy del: not a rule: 'smc nowhere'" "$tool" policy del 1 "smc nowhere"
	usage_error "policy set takes one FILE" "$tool" policy set
	usage_error "policy show takes no arguments" "$tool" policy show x
	usage_error "unknown option -x" "$tool" -vx status
	usage_error "--json takes no value" "$tool" status --json=1
	# Usage: standard error and status 2 when no command is given.
	"$tool" > "$tmp/out" 2> "$tmp/err"
	rc=$?
	[ "$rc" = 2 ] || fail "$name without a command: exit $rc, not 2"
	grep -q "^usage: $name" "$tmp/err" || fail "$name without a command: no usage on standard error"
}

[ $# -gt 0 ] || { echo "usage: cli.sh TOOL..." >&2; exit 2; }
for tool in "$@"; do
	name=$(basename "$tool")
	[ -x "$tool" ] || { fail "$tool: not an executable"; continue; }
	common
	case $name in
	usmc-bench) check_usmc_bench ;;
	usmc-kernel) check_usmc_kernel ;;
	usmc-run) check_usmc_run ;;
	usmc-stat) check_usmc_stat ;;
	esac
done
[ "$failures" = 0 ] || { echo "$failures failure(s)" >&2; exit 1; }
echo "cli: $# tool(s) keep the conventions"
