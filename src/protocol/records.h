// Records: the value of a Kafka `records` field (Produce request, Fetch
// response): a nullable byte range holding record batches, carried opaquely.
// The protocol module never looks inside; src/record parses and validates.
//
// Decoding does not copy: `view` points into the request frame, which the
// caller keeps alive for as long as the decoded request (and its Records) is
// used. For encoding, either point `view` at bytes that outlive the encode
// call, or hand the bytes over with copy_of()/owning(), which keep them in
// `owned` (copies of the Records share them).
//
//   Records r = Records::owning(std::make_shared<const Bytes>(batch));
//   part.records = r;                       // response now holds the batch
//   if (!req_part.records.is_null) validate(req_part.records.bytes());
#pragma once

#include <algorithm>
#include <memory>
#include <utility>

#include "common/bytes.h"

namespace herald::protocol {

struct Records {
  bool is_null = true;                  // null on the wire (length -1 / compact 0)
  ByteSpan view;                        // the bytes; empty when null
  std::shared_ptr<const Bytes> owned;   // optional owner of the bytes `view` points into

  // Non-null records that borrow `bytes` (caller keeps them alive).
  static Records view_of(ByteSpan bytes) {
    Records r;
    r.is_null = false;
    r.view = bytes;
    return r;
  }
  // Non-null records that share ownership of `bytes`.
  static Records owning(std::shared_ptr<const Bytes> bytes) {
    Records r;
    r.is_null = false;
    r.view = ByteSpan(*bytes);
    r.owned = std::move(bytes);
    return r;
  }
  static Records copy_of(Bytes bytes) { return owning(std::make_shared<const Bytes>(std::move(bytes))); }
  // Non-null and empty (e.g. a Fetch partition without data).
  static Records empty() { return view_of(ByteSpan()); }

  ByteSpan bytes() const { return view; }
  size_t size() const { return view.size(); }

  // Equal when both are null, or both hold the same bytes (not the same buffer).
  bool operator==(const Records& o) const {
    return is_null == o.is_null && std::equal(view.begin(), view.end(), o.view.begin(), o.view.end());
  }
};

}  // namespace herald::protocol
