// Small whole-file helpers for metadata files (topic catalogue, id
// allocator, snapshots). The segment log does its I/O through storage/file.h.
//
//   HERALD_TRY(atomic_write_file(dir / "topic.json", bytes));   // tmp + fsync + rename + fsync(dir)
//   HERALD_ASSIGN_OR_RETURN(Bytes b, read_whole_file(dir / "topic.json"));
#pragma once

#include <filesystem>

#include "common/bytes.h"
#include "common/result.h"

namespace herald {

// Replaces `path` atomically and durably: after a crash it holds the old or the new content.
Result<void> atomic_write_file(const std::filesystem::path& path, ByteSpan content);
// kNotFound if the file does not exist.
Result<Bytes> read_whole_file(const std::filesystem::path& path);
// fsync of a directory (makes creates, renames and unlinks in it durable).
Result<void> fsync_dir(const std::filesystem::path& dir);
// Maps errno to an Error (ENOSPC/EDQUOT -> kNoSpace, ENOENT -> kNotFound, else kIoError).
Error errno_error(int err, std::string_view what, const std::filesystem::path& path);

}  // namespace herald
