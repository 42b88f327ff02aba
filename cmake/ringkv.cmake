# Helpers shared by every CMakeLists.txt in the tree.

# rk_unit_test(NAME SOURCES ... LIBS ...)
# A cmocka test binary, registered with ctest under the "unit" label so the
# sanitizer build can run exactly these.
function(rk_unit_test name)
  cmake_parse_arguments(T "" "TIMEOUT" "SOURCES;LIBS" ${ARGN})
  add_executable(${name} ${T_SOURCES})
  target_link_libraries(${name} PRIVATE ${T_LIBS} PkgConfig::CMOCKA)
  add_test(NAME ${name} COMMAND ${name})
  if(NOT T_TIMEOUT)
    set(T_TIMEOUT 120)
  endif()
  set_tests_properties(${name} PROPERTIES LABELS unit TIMEOUT ${T_TIMEOUT}
    ENVIRONMENT "LSAN_OPTIONS=suppressions=${CMAKE_SOURCE_DIR}/tests/lsan.supp:print_suppressions=0")
endfunction()

# rk_proc_test(NAME SOURCES ... LIBS ...)
# A cmocka test that starts real service processes; it is told where the
# built binaries are through RINGKV_BIN_DIR.
function(rk_proc_test name)
  cmake_parse_arguments(T "" "TIMEOUT" "SOURCES;LIBS" ${ARGN})
  add_executable(${name} ${T_SOURCES})
  target_link_libraries(${name} PRIVATE ${T_LIBS} PkgConfig::CMOCKA)
  add_test(NAME ${name} COMMAND ${name})
  if(NOT T_TIMEOUT)
    set(T_TIMEOUT 300)
  endif()
  set_tests_properties(${name} PROPERTIES LABELS proc TIMEOUT ${T_TIMEOUT}
    ENVIRONMENT "RINGKV_BIN_DIR=${CMAKE_BINARY_DIR}/bin;RINGKV_SOURCE_DIR=${CMAKE_SOURCE_DIR}")
endfunction()
