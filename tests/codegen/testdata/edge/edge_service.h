// An interface at the edges of the IDL: fields named after keywords of the languages thrift and
// protoc generate for, a field named like its struct, defaults that are not zero (some made by
// braced lists), explicit field ids with removed (reserved) ones, optional parameters and
// results, and two services of one package with the same method names (or the same but for case
// and underscores). Its emitted files must compile with thrift-compiler (cpp, java, py, go) and
// protoc (cpp, java, python, go).
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "rpcboot/annotations.h"

namespace edge {

enum class Mode { kType, kFunc, kAwait };

// Every name here is a keyword somewhere: Python (await, def, from, lambda, pass, yield, None),
// Java (boolean, final, package, synchronized, throws), Go (chan, func, range, select, type),
// Thrift itself (binary, list, optional, service, string).
struct Keywords {
  int32_t await = 0;
  int32_t def = 0;
  std::string from;
  bool lambda = false;
  int64_t pass = 0;
  int32_t yield = 0;
  int32_t None = 0;
  bool boolean = false;
  int32_t final = 0;
  std::string package;
  int32_t synchronized = 0;
  int32_t throws = 0;
  std::vector<int32_t> chan;
  int32_t func = 0;
  int32_t range = 0;
  int32_t select = 0;
  Mode type = Mode::kType;
  std::vector<uint8_t> binary;
  std::vector<std::string> list;
  std::optional<int32_t> optional;
  std::string service;
  std::string string;
  // Names thrift-compiler's own generated code uses (C++, Go and the isset macro).
  bool read = false;
  bool write = false;
  int32_t printTo = 0;
  bool equals = false;
  int32_t isset = 0;
};

// A field named like its struct (legal C++: renamed Box_ in the .thrift only, where
// thrift-compiler's C++ struct could not name its own type otherwise), and defaults that are not
// zero: `optional` in the .proto, the default in the .thrift, for every target language.
struct Box {
  int32_t Box = 0;
  double ratio = 0.5;
  std::string label = "a b";
  bool open = true;
  uint64_t mask = ~0ull;
  Mode mode = Mode::kAwait;
};

// Version 2 of an item: fields reordered, `note` (id 3) and `legacy` (id 5) removed.
struct RPCBOOT_RESERVED(3, 5) Item {
  RPCBOOT_ID(4) std::string title;
  RPCBOOT_ID(1) int64_t sku = 0;
  RPCBOOT_ID(2) int32_t quantity = 0;
  RPCBOOT_ID(6) std::optional<double> price;
};

// Version 1 of the same item, as a deployed peer still has it.
struct ItemV1 {
  int64_t sku = 0;
  int32_t quantity = 0;
  std::string note;
  std::string title;
  int32_t legacy = 0;
};

// Defaults made by braced lists. g++ 12 cannot count this struct's fields through Boost.PFR (an
// internal compiler error), so the generated glue names them; a value read from the wire
// replaces each default whole (tests/rpcboot/defaults_test.cc).
struct Page {
  int32_t number = 0;
  int32_t size = 0;
};
struct Basket {
  Page page = {1, 20};
  std::vector<std::string> tags = {"new"};
  std::map<std::string, int32_t> quotas = {{"default", 1}};
  std::vector<std::vector<int32_t>> grid = {{1, 2}};
  std::vector<int32_t> ids = {1, 2};
  std::optional<Page> next;
};

class RPCBOOT_SERVICE Catalog {
 public:
  virtual ~Catalog() = default;
  virtual Keywords Echo(const Keywords& keywords) = 0;
  virtual Item Get(int64_t sku) = 0;
  virtual ItemV1 GetOld(int64_t sku) = 0;
  virtual Box Pack(const Box& box) = 0;
  virtual Basket Fill(const Basket& basket) = 0;
  virtual std::optional<Item> Find(std::optional<std::string> title,
                                   std::optional<int32_t> limit) = 0;
};

// Same method names as Catalog: its messages are named CatalogGetRequest / StockGetRequest,
// whatever the order of the two classes. So are those of get_old, named like Catalog's GetOld but
// for case and underscores (CatalogGetOldRequest, Stockget_oldRequest), which Go's generated
// code would not tell apart (GetOldRequest).
class RPCBOOT_SERVICE Stock {
 public:
  virtual ~Stock() = default;
  virtual int32_t Get(int64_t sku) = 0;
  virtual void Find(const std::string& title) = 0;
  virtual int32_t get_old(int64_t sku) = 0;
  // Parameters named like the locals of thrift-compiler's clients (C++, Java, Go).
  virtual void Track(int32_t seqid, int32_t cseqid, int32_t sentry, int32_t client,
                     int32_t resultHandler, int32_t protocolFactory, int32_t transport,
                     int32_t prot, int32_t ctx) = 0;
};

}  // namespace edge
