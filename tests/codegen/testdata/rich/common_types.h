// Types shared by the rich test interface, declared in a header of their own.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

namespace rich {

enum class Color { kRed, kGreen, kBlue = 7 };
// Shares value names with Color: the .proto must still compile.
enum class Light { kRed = 1, kGreen = 0, kOff = -2 };
// Unsigned underlying type with a value above INT8_MAX.
enum class Tier : uint8_t { kFree = 0, kGold = 200 };
// Unscoped, without a zero value.
enum Level { LEVEL_LOW = 1, LEVEL_HIGH = 2 };

struct Point {
  int32_t x = 0;
  int32_t y = 0;
};

struct Scalars {
  bool flag = false;
  int8_t i8 = 0;
  int16_t i16 = 0;
  int32_t i32 = 0;
  int64_t i64 = 0;
  uint8_t u8 = 0;
  uint16_t u16 = 0;
  uint32_t u32 = 0;
  uint64_t u64 = 0;
  float f32 = 0;
  double f64 = 0;
  std::string text;
  std::vector<uint8_t> blob;
  Color color = Color::kRed;
  Light light = Light::kGreen;
  Level level = LEVEL_LOW;
  Tier tier = Tier::kFree;
};

}  // namespace rich
