# Copies the emitted rich_service/common_types IDL files to OUT_DIR with the Thrift C++
# namespace and proto package renamed (rich -> rich_thrift for Thrift, rich_pb for proto), so reference code generated from
# them does not collide with the user's own C++ types. The wire bytes do not depend on either.
file(MAKE_DIRECTORY ${OUT_DIR})
foreach(stem common_types rich_service)
  file(READ ${IN_DIR}/${stem}.thrift thrift)
  string(REPLACE "namespace cpp rich" "namespace cpp rich_thrift" thrift "${thrift}")
  file(WRITE ${OUT_DIR}/${stem}.thrift "${thrift}")
  file(READ ${IN_DIR}/${stem}.proto proto)
  string(REPLACE "package rich;" "package rich_pb;" proto "${proto}")
  file(WRITE ${OUT_DIR}/${stem}.proto "${proto}")
endforeach()
