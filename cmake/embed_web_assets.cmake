# Turns the files of web/ into a C++ source holding them as string literals,
# for src/server/web_assets.h. Run as a script at build time:
#   cmake -DWEB_DIR=<web/> -DOUTPUT=<file.cc> -P embed_web_assets.cmake
# Each file becomes an asset at "/<name>" with a content type chosen by its
# extension; an unknown extension or a subdirectory is an error, so nothing
# is served with a guessed type.
cmake_minimum_required(VERSION 3.20)

set(types_html "text/html; charset=utf-8")
set(types_css "text/css; charset=utf-8")
set(types_js "text/javascript; charset=utf-8")
set(types_svg "image/svg+xml")
set(types_png "image/png")
set(types_ico "image/x-icon")
set(types_json "application/json")
set(types_txt "text/plain; charset=utf-8")

file(GLOB entries LIST_DIRECTORIES true "${WEB_DIR}/*")
list(SORT entries)
set(literals "")
set(table "")
set(index 0)
foreach(path ${entries})
  get_filename_component(name "${path}" NAME)
  if(IS_DIRECTORY "${path}")
    message(FATAL_ERROR "web/${name}: subdirectories are not served; keep web/ flat")
  endif()
  if(NOT name MATCHES "^[A-Za-z0-9_-][A-Za-z0-9_.-]*\\.([a-z]+)$")
    message(FATAL_ERROR "web/${name}: names are letters, digits, '.', '_', '-' and end in an extension")
  endif()
  set(ext "${CMAKE_MATCH_1}")
  if(NOT DEFINED types_${ext})
    message(FATAL_ERROR "web/${name}: no content type known for .${ext} (add one to ${CMAKE_CURRENT_LIST_FILE})")
  endif()

  # Every byte as a \xNN escape, 32 bytes per line.
  file(READ "${path}" hex HEX)
  string(LENGTH "${hex}" hex_length)
  set(lines "")
  set(offset 0)
  while(offset LESS hex_length)
    string(SUBSTRING "${hex}" ${offset} 64 line)
    string(REGEX REPLACE "([0-9a-f][0-9a-f])" "\\\\x\\1" line "${line}")
    string(APPEND lines "\n    \"${line}\"")
    math(EXPR offset "${offset} + 64")
  endwhile()
  if(lines STREQUAL "")
    set(lines " \"\"")
  endif()
  string(APPEND literals "// web/${name}\nconstexpr char kAsset${index}[] =${lines};\n")
  string(APPEND table "    {\"/${name}\", \"${types_${ext}}\", {kAsset${index}, sizeof(kAsset${index}) - 1}},\n")
  math(EXPR index "${index} + 1")
endforeach()
if(index EQUAL 0)
  message(FATAL_ERROR "${WEB_DIR} holds no files")
endif()

set(source "// Generated from web/ by cmake/embed_web_assets.cmake at build time; do not edit.
#include \"server/web_assets.h\"

namespace strata::server {
namespace {

${literals}
constexpr WebAsset kAssets[] = {
${table}};

}  // namespace

std::span<const WebAsset> WebAssets() { return kAssets; }

}  // namespace strata::server
")
file(WRITE "${OUTPUT}" "${source}")
