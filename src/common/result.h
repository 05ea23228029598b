// Result<T>: a value or an Error, returned across every module boundary.
//
// Member names follow std::expected so that moving to it later is a rename:
//
//   Result<BatchHeader> parse_header(std::span<const uint8_t> in) {
//     if (in.size() < kBatchHeaderSize) return Error{Errc::kTruncated, "batch header"};
//     ...
//   }
//   HERALD_ASSIGN_OR_RETURN(auto header, parse_header(bytes));
//   HERALD_TRY(log.flush());
//
// Exceptions are used only at start-up (config, port in use); decoders and I/O
// paths never throw.
#pragma once

#include <cstdint>
#include <string>
#include <type_traits>
#include <utility>
#include <variant>

#include "common/check.h"

namespace herald {

// Error categories (leveldb's Status codes, plus kNoSpace so that a full disk
// can become a produce error distinct from other I/O failures).
enum class Errc : uint8_t {
  kCorruption,       // bytes fail a length or checksum check
  kIoError,          // the OS refused an operation (EIO, EBADF, ...)
  kNoSpace,          // ENOSPC or EDQUOT
  kNotFound,         // a file, topic, partition or key does not exist
  kInvalidArgument,  // the caller passed something that can never succeed
  kTruncated,        // not enough bytes: the input ends early
  kUnsupported,      // a valid but unsupported feature (codec, version)
  kOutOfRange,       // an offset or index outside what exists
  kAlreadyExists,    // a create of something that exists
  kClosed,           // the object was closed or is shutting down
  kExhausted,        // out of file descriptors or memory (EMFILE, ENFILE, ENOMEM): may work later
};

const char* errc_name(Errc code);

struct Error {
  Errc code;
  std::string message;  // says what failed and where ("segment 00000042.log: crc mismatch at 4096")

  std::string to_string() const { return std::string(errc_name(code)) + ": " + message; }
};

template <class T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::in_place_index<0>, std::move(value)) {}  // NOLINT: implicit on purpose
  Result(Error error) : v_(std::in_place_index<1>, std::move(error)) {}  // NOLINT

  bool has_value() const { return v_.index() == 0; }
  explicit operator bool() const { return has_value(); }

  T& value() & {
    HERALD_CHECK(has_value(), "value() on error result: {}", std::get<1>(v_).to_string());
    return std::get<0>(v_);
  }
  const T& value() const& {
    HERALD_CHECK(has_value(), "value() on error result: {}", std::get<1>(v_).to_string());
    return std::get<0>(v_);
  }
  T&& value() && {
    HERALD_CHECK(has_value(), "value() on error result: {}", std::get<1>(v_).to_string());
    return std::get<0>(std::move(v_));
  }
  const Error& error() const& { return std::get<1>(v_); }
  Error&& error() && { return std::get<1>(std::move(v_)); }

  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T&& operator*() && { return std::move(*this).value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

 private:
  std::variant<T, Error> v_;
};

template <>
class [[nodiscard]] Result<void> {
 public:
  Result() = default;
  Result(Error error) : error_(std::move(error)), ok_(false) {}  // NOLINT

  bool has_value() const { return ok_; }
  explicit operator bool() const { return ok_; }
  void value() const { HERALD_CHECK(ok_, "value() on error result: {}", error_.to_string()); }
  const Error& error() const& { return error_; }
  Error&& error() && { return std::move(error_); }

 private:
  Error error_{Errc::kIoError, {}};
  bool ok_ = true;
};

inline Result<void> ok() { return {}; }

}  // namespace herald

#define HERALD_CONCAT_INNER(a, b) a##b
#define HERALD_CONCAT(a, b) HERALD_CONCAT_INNER(a, b)

// Returns the error of `expr` (a Result) from the enclosing function.
#define HERALD_TRY(expr)                               \
  do {                                                 \
    if (auto herald_r_ = (expr); !herald_r_) {         \
      return std::move(herald_r_).error();             \
    }                                                  \
  } while (0)

// HERALD_ASSIGN_OR_RETURN(auto x, make_x()); binds the value or returns the error.
#define HERALD_ASSIGN_OR_RETURN(lhs, expr) \
  HERALD_ASSIGN_OR_RETURN_IMPL(HERALD_CONCAT(herald_r_, __LINE__), lhs, expr)
#define HERALD_ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr) \
  auto tmp = (expr);                                 \
  if (!tmp) return std::move(tmp).error();           \
  lhs = std::move(tmp).value()
