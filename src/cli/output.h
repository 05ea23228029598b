// Output helpers shared by the CLI commands: aligned text tables for people,
// one JSON document (or one JSON object a line) for programs.
//
// Usage:
//   Table t({"PARTITION", "LOG-START", "HIGH-WATERMARK"});
//   t.add({"0", "0", "42"});
//   t.print(stdout);
//   fmt::print("{}\n", to_json_text(bytes));  // a JSON string, escaped; base64 when not UTF-8
#pragma once

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <cstdio>
#include <string>
#include <string_view>
#include <vector>

namespace herald::cli {

enum class OutputFormat { kPlain, kJson };

// Adds `--format plain|json` to `cmd`.
void add_format_option(CLI::App* cmd, OutputFormat& format, const char* what);

// A left-aligned text table; columns are as wide as their widest cell.
class Table {
 public:
  explicit Table(std::vector<std::string> headers) : headers_(std::move(headers)) {}
  void add(std::vector<std::string> row) { rows_.push_back(std::move(row)); }
  bool empty() const { return rows_.empty(); }
  // Writes the header and the rows, each line prefixed with `indent`.
  void print(std::FILE* out, std::string_view indent = "") const;

 private:
  std::vector<std::string> headers_;
  std::vector<std::vector<std::string>> rows_;
};

// True when `bytes` is valid UTF-8 (so it can go into JSON as a string).
bool is_utf8(std::string_view bytes);
std::string base64_encode(std::string_view bytes);

// A JSON value for raw record bytes: the string itself when it is UTF-8,
// otherwise {"base64": "..."}; null for a null key or value.
nlohmann::json bytes_to_json(const void* data, size_t size);

// Writes `j` and a newline to stdout.
void print_json(const nlohmann::json& j);

// The last error librdkafka logged (kafka_client.cc keeps it instead of printing it).
void note_client_error(std::string_view line);
std::string last_client_error();

// The exit code of a command: 0 when `r` holds a value, else prints
// "herald <command>: <message>" to stderr (with librdkafka's last error, if
// any, on the next line) and returns 1.
template <class T>
int exit_code(const T& r, std::string_view command) {
  if (r) return 0;
  std::fprintf(stderr, "herald %.*s: %s\n", static_cast<int>(command.size()), command.data(),
               r.error().message.c_str());
  if (const std::string last = last_client_error(); !last.empty()) {
    std::fprintf(stderr, "  (last client error: %s)\n", last.c_str());
  }
  return 1;
}

}  // namespace herald::cli
