// A rich annotated interface: every row of the type mapping table, several parameters, void,
// scalar returns, nested structs, enums, maps, optionals, vectors of structs, nested containers,
// and structs from two other headers (one of them not given to codegen).
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "common_types.h"
#include "extra/unlisted_types.h"
#include "rpcboot/annotations.h"

namespace rich {

struct Containers {
  std::vector<int32_t> ints;
  std::vector<int64_t> longs;
  std::vector<int8_t> tiny;
  std::vector<uint32_t> unsigned_ints;
  std::vector<double> doubles;
  std::vector<float> floats;
  std::vector<bool> flags;
  std::vector<std::string> names;
  std::vector<std::vector<uint8_t>> blobs;
  std::vector<Color> colors;
  std::vector<Point> points;
  std::map<std::string, int64_t> counts;
  std::map<int32_t, Point> points_by_id;
  std::map<int64_t, std::string> labels;
  std::map<uint64_t, bool> bits;
  std::unordered_map<std::string, double> weights;
  std::vector<std::vector<int32_t>> matrix;
  std::map<std::string, std::vector<std::string>> tags;
  std::vector<std::map<std::string, int32_t>> rows;
};

struct Optionals {
  std::optional<int32_t> maybe_int;
  std::optional<std::string> maybe_text;
  std::optional<Point> maybe_point;
  std::optional<Color> maybe_color;
  std::optional<std::vector<int32_t>> maybe_list;
  std::optional<double> maybe_double;
  std::optional<bool> maybe_flag;
  std::optional<std::vector<uint8_t>> maybe_blob;
};

struct Everything {
  int64_t id = 0;
  Scalars scalars;
  Containers containers;
  Optionals optionals;
  Stamp stamp;  // from extra/unlisted_types.h, which is not given to codegen
  std::vector<Everything> children;
  std::string end;  // a Thrift keyword: renamed to end_ in the .thrift only
};

// A struct declared inside another: its IDL name is the simple name.
struct Order {
  struct Line {
    int64_t sku = 0;
    int32_t quantity = 0;
  };
  std::vector<Line> lines;
  std::map<std::string, Line> by_code;
};

struct EchoRequest {
  Everything value;
};

class RPCBOOT_SERVICE RichService {
 public:
  virtual ~RichService() = default;
  RPCBOOT_IDEMPOTENT virtual Everything Echo(const EchoRequest& request) = 0;
  virtual Scalars EchoScalars(Scalars scalars) = 0;
  virtual void Notify(int64_t id, const std::string& message, Color color) = 0;
  RPCBOOT_IDEMPOTENT virtual int64_t Count() = 0;
  virtual std::vector<Point> Path(const std::vector<Point>& points, bool reversed) = 0;
  virtual std::map<std::string, int32_t> Histogram(std::vector<std::string> words) = 0;
  virtual Color Mix(Color a, Color b) = 0;
  virtual std::vector<std::vector<int32_t>> Transpose(
      const std::vector<std::vector<int32_t>>& m) = 0;
  virtual Stamp Now() = 0;
  virtual int64_t PlaceOrder(const Order& order) = 0;
  // Optional parameters and results: "key <n>" for a key >= 0, nothing otherwise.
  RPCBOOT_IDEMPOTENT virtual std::optional<std::string> Lookup(std::optional<int64_t> key) = 0;
  // The point one step right of `origin`, nothing without one.
  virtual std::optional<Point> Nearest(const std::optional<Point>& origin) = 0;
};

// Defaults that are not zero: a stock peer's explicit zero must arrive as zero, a field it leaves
// unset as the C++ default (`optional` in the .proto, defaults in the .thrift).
struct Limits {
  int32_t page_size = 20;
  bool notify = true;
  double ratio = 0.5;
  std::string region = "eu";
  Level level = LEVEL_HIGH;
  int32_t spare = 0;
};

class RPCBOOT_SERVICE AdminService {
 public:
  virtual ~AdminService() = default;
  virtual void Reset() = 0;
  RPCBOOT_IDEMPOTENT virtual std::string Version() const = 0;
  virtual Level SetLevel(Level level) = 0;
  RPCBOOT_IDEMPOTENT virtual Limits EchoLimits(const Limits& limits) = 0;
};

}  // namespace rich
