# Makes the preload's version script from the preprocessed name list
# (src/preload/usmc_preload_map.in): cmake -DIN=names.i -DOUT=map -P this.
file(READ ${IN} text)
string(REGEX REPLACE ".*usmc_preload_map_begin(.*)usmc_preload_map_end.*" "\\1" text "${text}")
string(REGEX MATCHALL "[-+][ \t\n]*[A-Za-z_][A-Za-z_0-9]*" marks "${text}")
set(names)
set(own)
foreach(m IN LISTS marks)
  string(REGEX REPLACE "^([-+])[ \t\n]*" "" name "${m}")
  if(m MATCHES "^-")
    list(APPEND own ${name})
  else()
    list(APPEND names ${name})
  endif()
endforeach()
list(REMOVE_ITEM names ${own})
list(REMOVE_DUPLICATES names)
list(LENGTH names n)
if(n LESS 50)
  message(FATAL_ERROR "preload_map: only ${n} names found in ${IN}")
endif()
list(JOIN names ";\n\t\t" body)
file(WRITE ${OUT}.new "/* Made from src/preload/usmc_preload_names.h and USMC_SYS_CALLS: do not edit. */
{
	global:
		${body};
	local:
		*;
};
")
# Rewritten only when it changes, so that the library is linked again only then.
file(COPY_FILE ${OUT}.new ${OUT} ONLY_IF_DIFFERENT)
