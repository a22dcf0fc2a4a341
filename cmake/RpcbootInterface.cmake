# rpcboot_add_interface(<target> HEADERS <header>... [INCLUDE_DIRS <dir>...] [CODEGEN_ARGS <arg>...]
#                       [DEPENDS <interface target>...] [COMPAT_WITH <dir>])
#
# Runs rpcboot-codegen on the annotated HEADERS at build time (again whenever one of them, or
# any project header they include, changes) and defines <target>, a static library holding the
# generated C++ glue. Link it next to rpcboot::rpcboot.
#
# The emitted files land in ${CMAKE_CURRENT_BINARY_DIR}/<target>_rpcboot/ :
#   <stem>.thrift, <stem>.proto      for other languages
#   <stem>.rpcboot.h, <stem>.rpcboot.cc
# and their paths are stored on the target as the properties RPCBOOT_THRIFT_FILES,
# RPCBOOT_PROTO_FILES and RPCBOOT_OUTPUT_DIR.
#
# INCLUDE_DIRS default to the headers' own directories; they are given to codegen (clang) and
# become PUBLIC include directories of <target>.
#
# DEPENDS names interface targets (made by rpcboot_add_interface) whose headers these headers
# include: types they declare are imported (Thrift include, proto import, #include of their
# glue) instead of emitted again, so both interfaces can be used in one program and their IDL
# files compiled together. <target> links them PUBLIC. Their emitted files stay in their own
# directories: give both to protoc (-I) and thrift (-I).
#
# COMPAT_WITH names a directory holding the IDL emitted before (the .proto files of the last
# release, kept in the project): building <target> then runs `rpcboot-codegen --check-compat`
# against it and fails, listing each change that would break deployed peers.
function(rpcboot_add_interface target)
  cmake_parse_arguments(ARG "" "COMPAT_WITH" "HEADERS;INCLUDE_DIRS;CODEGEN_ARGS;DEPENDS" ${ARGN})
  if(NOT ARG_HEADERS)
    message(FATAL_ERROR "rpcboot_add_interface(${target}): HEADERS is required")
  endif()
  if(TARGET rpcboot::codegen)
    set(codegen rpcboot::codegen)
  else()
    message(FATAL_ERROR "rpcboot_add_interface(${target}): the rpcboot::codegen executable is not defined")
  endif()

  set(out_dir ${CMAKE_CURRENT_BINARY_DIR}/${target}_rpcboot)
  file(MAKE_DIRECTORY ${out_dir})
  set(headers "")
  set(include_dirs ${ARG_INCLUDE_DIRS})
  foreach(header IN LISTS ARG_HEADERS)
    get_filename_component(abs ${header} ABSOLUTE BASE_DIR ${CMAKE_CURRENT_SOURCE_DIR})
    list(APPEND headers ${abs})
    if(NOT ARG_INCLUDE_DIRS)
      get_filename_component(dir ${abs} DIRECTORY)
      list(APPEND include_dirs ${dir})
    endif()
  endforeach()
  list(REMOVE_DUPLICATES include_dirs)

  # Each dependency's own codegen run, dependencies of dependencies first: one --import per run.
  set(import_groups "")
  set(import_headers "")
  set(import_include_dirs "")
  foreach(dep IN LISTS ARG_DEPENDS)
    if(NOT TARGET ${dep})
      message(FATAL_ERROR "rpcboot_add_interface(${target}): DEPENDS ${dep} is not a target; "
                          "define it with rpcboot_add_interface before ${target}")
    endif()
    get_target_property(dep_groups ${dep} RPCBOOT_IMPORT_GROUPS)
    get_target_property(dep_dirs ${dep} RPCBOOT_CODEGEN_INCLUDE_DIRS)
    if(NOT dep_groups)
      message(FATAL_ERROR "rpcboot_add_interface(${target}): DEPENDS ${dep} was not made by "
                          "rpcboot_add_interface")
    endif()
    foreach(group IN LISTS dep_groups)
      if(NOT group IN_LIST import_groups)
        list(APPEND import_groups "${group}")
      endif()
    endforeach()
    list(APPEND import_include_dirs ${dep_dirs})
  endforeach()
  set(import_args "")
  foreach(group IN LISTS import_groups)
    list(APPEND import_args --import "${group}")
    string(REPLACE "," ";" group_headers "${group}")
    list(APPEND import_headers ${group_headers})
  endforeach()
  foreach(header IN LISTS headers)
    if(header IN_LIST import_headers)
      message(FATAL_ERROR "rpcboot_add_interface(${target}): ${header} is also a header of a "
                          "DEPENDS interface; a header belongs to one interface")
    endif()
  endforeach()

  set(outputs "")
  set(sources "")
  set(thrift_files "")
  set(proto_files "")
  foreach(abs IN LISTS headers)
    get_filename_component(name ${abs} NAME)
    string(REGEX REPLACE "\\..*$" "" stem ${name})
    list(APPEND outputs ${out_dir}/${stem}.thrift ${out_dir}/${stem}.proto
                        ${out_dir}/${stem}.thrift.json
                        ${out_dir}/${stem}.rpcboot.h ${out_dir}/${stem}.rpcboot.cc)
    list(APPEND sources ${out_dir}/${stem}.rpcboot.cc)
    list(APPEND thrift_files ${out_dir}/${stem}.thrift)
    list(APPEND proto_files ${out_dir}/${stem}.proto)
  endforeach()

  set(codegen_include_dirs "")
  foreach(dir IN LISTS include_dirs)
    get_filename_component(abs_dir ${dir} ABSOLUTE BASE_DIR ${CMAKE_CURRENT_SOURCE_DIR})
    list(APPEND codegen_include_dirs ${abs_dir})
  endforeach()
  list(APPEND codegen_include_dirs ${import_include_dirs})
  list(REMOVE_DUPLICATES codegen_include_dirs)
  set(include_args "")
  foreach(dir IN LISTS codegen_include_dirs)
    get_filename_component(abs_dir ${dir} ABSOLUTE BASE_DIR ${CMAKE_CURRENT_SOURCE_DIR})
    list(APPEND include_args -I${dir})
  endforeach()

  add_custom_command(
    OUTPUT ${outputs}
    COMMAND ${codegen} --out-dir ${out_dir} --depfile ${out_dir}/${target}.d ${include_args}
            ${import_args} ${ARG_CODEGEN_ARGS} ${headers}
    DEPENDS ${headers} ${import_headers} ${codegen}
    DEPFILE ${out_dir}/${target}.d
    COMMENT "rpcboot-codegen: ${target}"
    VERBATIM)

  add_library(${target} STATIC ${sources})
  target_include_directories(${target} PUBLIC ${out_dir} ${include_dirs})
  target_link_libraries(${target} PUBLIC rpcboot::rpcboot ${ARG_DEPENDS})
  target_compile_features(${target} PUBLIC cxx_std_17)
  if(ARG_COMPAT_WITH)
    get_filename_component(compat_dir ${ARG_COMPAT_WITH} ABSOLUTE BASE_DIR ${CMAKE_CURRENT_SOURCE_DIR})
    file(GLOB previous_idl ${compat_dir}/*.proto)
    add_custom_command(
      OUTPUT ${out_dir}/${target}.compat.stamp
      COMMAND ${codegen} --check-compat ${compat_dir} ${include_args} ${import_args}
              ${ARG_CODEGEN_ARGS} ${headers}
      COMMAND ${CMAKE_COMMAND} -E touch ${out_dir}/${target}.compat.stamp
      DEPENDS ${headers} ${import_headers} ${codegen} ${previous_idl} ${proto_files}
      COMMENT "rpcboot-codegen: ${target} against ${compat_dir}"
      VERBATIM)
    add_custom_target(${target}_compat DEPENDS ${out_dir}/${target}.compat.stamp)
    add_dependencies(${target} ${target}_compat)
  endif()
  string(REPLACE ";" "," own_group "${headers}")
  set(groups ${import_groups})
  list(APPEND groups "${own_group}")
  set_target_properties(${target} PROPERTIES
    RPCBOOT_IMPORT_GROUPS "${groups}"
    RPCBOOT_CODEGEN_INCLUDE_DIRS "${codegen_include_dirs}"
    RPCBOOT_THRIFT_FILES "${thrift_files}"
    RPCBOOT_PROTO_FILES "${proto_files}"
    RPCBOOT_OUTPUT_DIR "${out_dir}")
endfunction()
