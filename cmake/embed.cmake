# Writes a C++ source defining `std::string_view NAME` with the bytes of INPUT, so data files the
# daemon needs by default (referrer hosts, crawler patterns) ship inside the binary.
# Usage: cmake -DINPUT=file -DOUTPUT=file.cc -DNAME=symbol -P embed.cmake
file(READ "${INPUT}" hex HEX)
string(LENGTH "${hex}" n)
math(EXPR bytes "${n} / 2")
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "'\\\\x\\1'," body "${hex}")
file(WRITE "${OUTPUT}.tmp"
  "// Generated from ${INPUT} by cmake/embed.cmake; do not edit.\n"
  "#include <string_view>\n"
  "namespace switchyard::embedded {\n"
  "extern const std::string_view ${NAME};\n"
  "static const char ${NAME}_bytes[] = {${body}'\\0'};\n"
  "const std::string_view ${NAME}{${NAME}_bytes, ${bytes}};\n"
  "}\n")
file(COPY_FILE "${OUTPUT}.tmp" "${OUTPUT}" ONLY_IF_DIFFERENT)
file(REMOVE "${OUTPUT}.tmp")
