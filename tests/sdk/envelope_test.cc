#include "sdk/envelope.h"

#include <gtest/gtest.h>

#include "sdk/uuid.h"

namespace herald::sdk {
namespace {

std::optional<std::string> header(const Headers& hs, std::string_view name) {
  for (const auto& h : hs) {
    if (h.name == name) return h.value;
  }
  return std::nullopt;
}

TEST(Envelope, EncodeFollowsTheKafkaBinaryBinding) {
  Event ev = Event::json("users.email_changed", "/users", "user-42", {{"email", "a@b.c"}});
  ev.aggregate_version = 7;
  ev.extensions.push_back({"ce_subject", "email"});
  auto rec = encode(ev);
  ASSERT_TRUE(rec) << rec.error().to_string();
  EXPECT_EQ(rec->key, "user-42");
  EXPECT_EQ(rec->value, R"({"email":"a@b.c"})");
  EXPECT_EQ(header(rec->headers, "ce_specversion"), "1.0");
  EXPECT_EQ(header(rec->headers, "ce_type"), "users.email_changed");
  EXPECT_EQ(header(rec->headers, "ce_source"), "/users");
  EXPECT_EQ(header(rec->headers, "content-type"), "application/json");
  EXPECT_EQ(header(rec->headers, "herald_aggregate_version"), "7");
  EXPECT_EQ(header(rec->headers, "ce_subject"), "email");
  auto id = header(rec->headers, "ce_id");
  ASSERT_TRUE(id);
  EXPECT_TRUE(uuid_v7_unix_ms(*id)) << *id << " is not a UUIDv7";
  auto time = header(rec->headers, "ce_time");
  ASSERT_TRUE(time);
  EXPECT_TRUE(parse_rfc3339(*time));
  // encode() leaves the event alone; encode_in_place() fills id and time.
  EXPECT_TRUE(ev.id.empty());
  auto rec2 = encode_in_place(ev);
  ASSERT_TRUE(rec2);
  EXPECT_FALSE(ev.id.empty());
  EXPECT_NE(ev.time_ms, 0);
  EXPECT_EQ(header(rec2->headers, "ce_id"), ev.id);
}

TEST(Envelope, DecodeInvertsEncode) {
  Event ev = Event::json("orders.placed", "/orders", "order-1", {{"total", 12.5}});
  ev.aggregate_version = 3;
  ev.extensions.push_back({"traceparent", "00-abc-def-01"});
  auto rec = encode_in_place(ev);
  ASSERT_TRUE(rec);
  std::optional<std::string_view> value = *rec->value;
  auto back = decode(rec->key, value, rec->headers);
  ASSERT_TRUE(back) << back.error().to_string();
  EXPECT_EQ(*back, ev);
  EXPECT_EQ(back->json_payload().value()["total"], 12.5);
  EXPECT_EQ(back->extension("traceparent"), "00-abc-def-01");
}

TEST(Envelope, RawBytesPayloadRoundTrips) {
  Event ev;
  ev.type = "blob.stored";
  ev.source = "/blobs";
  ev.aggregate_id = "b1";
  ev.payload = std::string("\x00\xff\x01raw", 6);
  ev.content_type = "application/octet-stream";
  auto rec = encode_in_place(ev);
  ASSERT_TRUE(rec);
  auto back = decode(rec->key, std::string_view(*rec->value), rec->headers);
  ASSERT_TRUE(back);
  EXPECT_EQ(back->payload, ev.payload);
  EXPECT_EQ(back->content_type, "application/octet-stream");
  EXPECT_FALSE(back->json_payload());
}

TEST(Envelope, TombstoneHasNullValueAndDecodesWithoutHeaders) {
  auto rec = encode(Event::make_tombstone("user-9", "users.deleted", "/users"));
  ASSERT_TRUE(rec);
  EXPECT_FALSE(rec->value.has_value());
  EXPECT_FALSE(header(rec->headers, "content-type"));
  auto back = decode("user-9", std::nullopt, {});
  ASSERT_TRUE(back);
  EXPECT_TRUE(back->tombstone);
  EXPECT_EQ(back->aggregate_id, "user-9");
  EXPECT_TRUE(back->type.empty());
}

TEST(Envelope, EncodeRejectsMissingTypeOrSourceAndReservedExtensions) {
  Event ev = Event::json("", "/x", "k", nullptr);
  EXPECT_EQ(encode(ev).error().code, Errc::kInvalidArgument);
  ev = Event::json("t", "", "k", nullptr);
  EXPECT_EQ(encode(ev).error().code, Errc::kInvalidArgument);
  ev = Event::json("t", "/x", "k", nullptr);
  ev.extensions.push_back({"ce_id", "dup"});
  EXPECT_EQ(encode(ev).error().code, Errc::kInvalidArgument);
}

TEST(Envelope, DecodeNamesTheMissingOrBadHeader) {
  Headers good = {{"ce_specversion", "1.0"},
                  {"ce_id", "1"},
                  {"ce_type", "t"},
                  {"ce_source", "/s"},
                  {"ce_time", "2024-05-01T12:00:00Z"}};
  ASSERT_TRUE(decode("k", std::string_view("{}"), good));
  for (const char* drop : {"ce_specversion", "ce_id", "ce_type", "ce_source"}) {
    Headers hs;
    for (const auto& h : good) {
      if (h.name != drop) hs.push_back(h);
    }
    auto r = decode("k", std::string_view("{}"), hs);
    ASSERT_FALSE(r) << drop;
    EXPECT_NE(r.error().message.find(drop), std::string::npos) << r.error().message;
  }
  Headers v2 = good;
  v2[0].value = "2.0";
  EXPECT_FALSE(decode("k", std::string_view("{}"), v2));
  Headers v11 = good;
  v11[0].value = "1.1";
  EXPECT_TRUE(decode("k", std::string_view("{}"), v11));
  Headers bad_time = good;
  bad_time[4].value = "yesterday";
  EXPECT_FALSE(decode("k", std::string_view("{}"), bad_time));
  Headers bad_version = good;
  bad_version.push_back({"herald_aggregate_version", "x1"});
  EXPECT_FALSE(decode("k", std::string_view("{}"), bad_version));
  // Missing content-type means JSON; missing ce_time means 0.
  Headers minimal(good.begin(), good.begin() + 4);
  auto m = decode("k", std::string_view("{}"), minimal);
  ASSERT_TRUE(m);
  EXPECT_EQ(m->content_type, "application/json");
  EXPECT_EQ(m->time_ms, 0);
}

TEST(Rfc3339, FormatsUtcWithMilliseconds) {
  EXPECT_EQ(format_rfc3339(0), "1970-01-01T00:00:00.000Z");
  EXPECT_EQ(format_rfc3339(1714564800123), "2024-05-01T12:00:00.123Z");
  EXPECT_EQ(format_rfc3339(-1), "1969-12-31T23:59:59.999Z");
}

TEST(Rfc3339, ParsesOffsetsFractionsAndSeparators) {
  EXPECT_EQ(*parse_rfc3339("2024-05-01T12:00:00.123Z"), 1714564800123);
  EXPECT_EQ(*parse_rfc3339("2024-05-01T12:00:00Z"), 1714564800000);
  EXPECT_EQ(*parse_rfc3339("2024-05-01t12:00:00z"), 1714564800000);
  EXPECT_EQ(*parse_rfc3339("2024-05-01 14:00:00+02:00"), 1714564800000);
  EXPECT_EQ(*parse_rfc3339("2024-05-01T07:30:00.5-04:30"), 1714564800500);
  EXPECT_EQ(*parse_rfc3339("2024-05-01T12:00:00.123456789Z"), 1714564800123);
  EXPECT_EQ(*parse_rfc3339("2024-02-29T00:00:00Z"), 1709164800000);  // leap day
  EXPECT_EQ(*parse_rfc3339("1969-12-31T23:59:59Z"), -1000);
  for (int64_t ms : {0L, 1L, 999L, 1714564800123L, 4102444800000L, 951782400000L /* 2000-02-29 */}) {
    EXPECT_EQ(*parse_rfc3339(format_rfc3339(ms)), ms);
  }
}

TEST(Rfc3339, RejectsMalformed) {
  for (const char* s : {"", "2024-05-01", "2024-05-01T12:00:00", "2024-13-01T12:00:00Z",
                        "2024-05-01T25:00:00Z", "2024-05-01T12:00:00.Z", "2024-05-01T12:00:00+2:00",
                        "2024-05-01T12:00:00Zjunk", "2023-02-29T00:00:00Z", "2024-04-31T00:00:00Z"}) {
    EXPECT_FALSE(parse_rfc3339(s)) << s;
  }
}

TEST(HeadersJson, RoundTripsTextAndBinaryNamesAndValues) {
  Headers hs = {{"ce_id", "abc"}, {"bin", std::string("\xff\x00\xfe", 3)}, {"empty", ""},
                {"utf8", "caf\xc3\xa9"}, {"x-\xff\xfe", "v"}, {"\xc3", "\xff"}};
  std::string text = headers_to_json(hs);
  auto back = headers_from_json(text);
  ASSERT_TRUE(back);
  EXPECT_EQ(*back, hs);
  EXPECT_FALSE(headers_from_json("{}"));
  EXPECT_FALSE(headers_from_json("[[1,2]]"));
  EXPECT_FALSE(headers_from_json("[[\"a\",\"!!\",\"b64\"]]"));
}

struct EmailChanged {
  std::string email;
};
void from_json(const nlohmann::json& j, EmailChanged& e) { j.at("email").get_to(e.email); }

TEST(HandlerRegistry, DispatchesByTypeWithTypedPayload) {
  HandlerRegistry<std::vector<std::string>&> reg;
  reg.on_json<EmailChanged>("users.email_changed",
                            [](const EmailChanged& e, const Event& ev, std::vector<std::string>& out) {
                              out.push_back(ev.aggregate_id + "=" + e.email);
                            });
  reg.on("users.deleted", [](const Event& ev, std::vector<std::string>& out) {
    out.push_back("deleted " + ev.aggregate_id);
  });
  std::vector<std::string> seen;
  EXPECT_TRUE(reg.dispatch(Event::json("users.email_changed", "/u", "u1", {{"email", "x@y"}}), seen));
  EXPECT_TRUE(reg.dispatch(Event::json("users.deleted", "/u", "u2", nullptr), seen));
  EXPECT_FALSE(reg.dispatch(Event::json("users.unknown", "/u", "u3", nullptr), seen));
  EXPECT_EQ(seen, (std::vector<std::string>{"u1=x@y", "deleted u2"}));
  EXPECT_TRUE(reg.handles("users.deleted"));
  EXPECT_FALSE(reg.handles("users.unknown"));
}

TEST(HandlerRegistry, BadPayloadThrowsAndFallbackCatchesUnknownTypes) {
  HandlerRegistry<> reg;
  reg.on_json<EmailChanged>("users.email_changed", [](const EmailChanged&, const Event&) {});
  Event bad = Event::json("users.email_changed", "/u", "u1", {{"mail", "x"}});
  EXPECT_THROW(reg.dispatch(bad), nlohmann::json::exception);
  bad.payload = "not json";
  EXPECT_THROW(reg.dispatch(bad), nlohmann::json::exception);
  int fallback = 0;
  reg.otherwise([&](const Event&) { ++fallback; });
  EXPECT_TRUE(reg.dispatch(Event::json("other", "/u", "u", nullptr)));
  EXPECT_EQ(fallback, 1);
  EXPECT_TRUE(reg.handles("anything"));
}

TEST(HandlerRegistry, ATombstoneOfATypedHandlersTypeGoesToTheFallback) {
  HandlerRegistry<std::vector<std::string>&> reg;
  reg.on_json<EmailChanged>("users.email_changed",
                            [](const EmailChanged& e, const Event&, std::vector<std::string>& out) {
                              out.push_back(e.email);
                            });
  reg.on("users.deleted", [](const Event& ev, std::vector<std::string>& out) {
    out.push_back("raw " + ev.aggregate_id);
  });
  std::vector<std::string> seen;
  const Event typed_tombstone = Event::make_tombstone("u1", "users.email_changed");
  EXPECT_FALSE(reg.prepare(typed_tombstone).has_value());
  EXPECT_FALSE(reg.dispatch(typed_tombstone, seen));  // no fallback yet: not handled, nothing thrown
  EXPECT_TRUE(reg.dispatch(Event::make_tombstone("u2", "users.deleted"), seen));  // raw handlers see tombstones
  reg.otherwise([](const Event& ev, std::vector<std::string>& out) {
    out.push_back(std::string(ev.tombstone ? "tombstone " : "event ") + ev.aggregate_id);
  });
  EXPECT_TRUE(reg.dispatch(typed_tombstone, seen));
  EXPECT_EQ(seen, (std::vector<std::string>{"raw u2", "tombstone u1"}));
}

TEST(HandlerRegistry, PreparedPayloadIsUsedAndItsParseErrorThrownAtDispatch) {
  HandlerRegistry<std::vector<std::string>&> reg;
  reg.on_json<EmailChanged>("users.email_changed",
                            [](const EmailChanged& e, const Event&, std::vector<std::string>& out) {
                              out.push_back(e.email);
                            });
  reg.on("users.deleted", [](const Event& ev, std::vector<std::string>& out) { out.push_back(ev.aggregate_id); });
  Event ev = Event::json("users.email_changed", "/u", "u1", {{"email", "x@y"}});
  auto prepared = reg.prepare(ev);
  ASSERT_TRUE(prepared.has_value());
  ev.payload = "not json";  // the handler gets what prepare() parsed, not the payload again
  std::vector<std::string> seen;
  EXPECT_TRUE(reg.dispatch(ev, &prepared, seen));
  EXPECT_EQ(seen, (std::vector<std::string>{"x@y"}));
  EXPECT_THROW(reg.dispatch(ev, nullptr, seen), nlohmann::json::exception);

  auto failed = reg.prepare(ev);  // "not json": the exception is kept, thrown at dispatch, every time
  EXPECT_THROW(reg.dispatch(ev, &failed, seen), nlohmann::json::exception);
  EXPECT_THROW(reg.dispatch(ev, &failed, seen), nlohmann::json::exception);

  Event deleted = Event::json("users.deleted", "/u", "u2", nullptr);
  auto none = reg.prepare(deleted);  // raw handlers parse nothing ahead
  EXPECT_FALSE(none.has_value());
  EXPECT_FALSE(reg.prepare(Event::json("users.unknown", "/u", "u3", nullptr)).has_value());
  EXPECT_TRUE(reg.dispatch(deleted, &none, seen));
  EXPECT_EQ(seen, (std::vector<std::string>{"x@y", "u2"}));
}

TEST(Envelope, TextForDbReplacesBadBytesAndCutsAtACharacter) {
  using namespace std::string_literals;
  EXPECT_EQ(text_for_db("plain text", 100), "plain text");
  EXPECT_EQ(text_for_db("caf\xC3\xA9", 100), "caf\xC3\xA9") << "valid UTF-8 stays";
  EXPECT_EQ(text_for_db("a\xFF" "b", 100), "a\xEF\xBF\xBD" "b");
  EXPECT_EQ(text_for_db("a\0b"s, 100), "a\xEF\xBF\xBD" "b");
  EXPECT_EQ(text_for_db("x\xC3", 100), "x\xEF\xBF\xBD") << "truncated sequence";
  EXPECT_EQ(text_for_db("\xED\xA0\x80", 100), "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD") << "a surrogate";
  // 'é' is 2 bytes: a cut at 4 bytes would split the second one.
  EXPECT_EQ(text_for_db("\xC3\xA9\xC3\xA9\xC3\xA9", 3), "\xC3\xA9\xE2\x80\xA6");
  EXPECT_EQ(text_for_db(std::string(10, 'x'), 4), "xxxx\xE2\x80\xA6");
  EXPECT_EQ(text_for_db("", 4), "");
}

}  // namespace
}  // namespace herald::sdk
