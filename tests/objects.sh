# SPDX-License-Identifier: MIT
#
# For the checks that read the library's compiled objects (layers.sh,
# globals.sh):
#
# objects_each OBJECTS FN: runs FN OBJECT SOURCE for each object of
# OBJECTS (';'-separated, as CMake's $<TARGET_OBJECTS> gives them), SOURCE
# being its source file under src/ ("src/conn/usmc_tx.c").  Exits the
# script on an object of no file under src/, on one not built, and on an
# empty list; objects_n is then how many there were.
objects_each() {
	_objs=$1 _fn=$2 _n=0 _ifs=$IFS
	IFS=';'
	for _o in $_objs; do
		IFS=$_ifs
		case $_o in
		*/src/*.o) _src=src/${_o##*/src/} _src=${_src%.o} ;;
		*) echo "$_o: not an object of a file under src/"; exit 1 ;;
		esac
		[ -r "$_o" ] || { echo "$_o: not built"; exit 1; }
		_n=$((_n + 1))
		"$_fn" "$_o" "$_src"
	done
	IFS=$_ifs
	[ "$_n" -gt 0 ] || { echo "no objects"; exit 1; }
	objects_n=$_n
}
