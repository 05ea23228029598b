#!/usr/bin/python3
"""Generates Herald's Kafka message codecs from src/protocol/schema/*.json.

Usage: gen.py --out DIR --shards N SCHEMA.json...

Writes, under DIR/protocol/:
  messages.h         one plain struct per message (nested Kafka struct types
                     inside it), encode/decode declarations, with_request_type()
  messages_K.cc      codec bodies, K = 0..N-1 (split so that two cores share them)
  api_table.inc      enum ApiKey and the table of request (key, name, versions)
  samples.h/.cc      test support: fill_sample() populates every field that
                     exists in a version (round-trip tests, not in the library)

The schemas use Apache Kafka's vocabulary (validVersions, flexibleVersions,
versions, nullableVersions, taggedVersions, tag, default). The encoding rules
(classic vs compact, tagged sections, version gates) live only here and in
src/protocol/wire.h. Standard library only: runs with /usr/bin/python3.
"""
import argparse
import json
import os
import re
import sys

MAX_VERSION = 0x7FFF

CPP_KEYWORDS = {
    "alignas", "alignof", "and", "asm", "auto", "bool", "break", "case", "catch", "char",
    "class", "const", "continue", "default", "delete", "do", "double", "else", "enum",
    "explicit", "export", "extern", "false", "float", "for", "friend", "goto", "if", "inline",
    "int", "long", "mutable", "namespace", "new", "noexcept", "not", "operator", "or",
    "private", "protected", "public", "register", "return", "short", "signed", "sizeof",
    "static", "struct", "switch", "template", "this", "throw", "true", "try", "typedef",
    "typeid", "typename", "union", "unsigned", "using", "virtual", "void", "volatile", "while",
    "encode", "decode",
}

INT_TYPES = {
    "int8": ("int8_t", 1, "i8"),
    "int16": ("int16_t", 2, "i16"),
    "uint16": ("uint16_t", 2, "u16"),
    "int32": ("int32_t", 4, "i32"),
    "int64": ("int64_t", 8, "i64"),
}
FIXED_SIZE = {"bool": 1, "float64": 8, "uuid": 16, **{k: v[1] for k, v in INT_TYPES.items()}}
PRIMITIVES = set(FIXED_SIZE) | {"string", "bytes", "records"}


class SchemaError(Exception):
    pass


class Versions:
    """A closed version range [lo, hi]; empty when lo > hi ("none")."""

    def __init__(self, spec, what):
        spec = "none" if spec is None else str(spec).strip()
        if spec == "none":
            self.lo, self.hi = 1, 0
        elif spec.endswith("+"):
            self.lo, self.hi = int(spec[:-1]), MAX_VERSION
        elif "-" in spec:
            a, b = spec.split("-")
            self.lo, self.hi = int(a), int(b)
        elif re.fullmatch(r"\d+", spec):
            self.lo = self.hi = int(spec)
        else:
            raise SchemaError(f"{what}: bad version spec {spec!r}")

    def empty(self):
        return self.lo > self.hi

    def contains(self, v):
        return self.lo <= v <= self.hi

    def intersect(self, other):
        r = Versions("none", "")
        r.lo, r.hi = max(self.lo, other.lo), min(self.hi, other.hi)
        return r

    def cond(self, valid):
        """C++ condition on `version` for this range, given the message's valid range."""
        if self.empty():
            return "false"
        parts = []
        if self.lo > valid.lo:
            parts.append(f"version >= {self.lo}")
        if self.hi < valid.hi:
            parts.append(f"version <= {self.hi}")
        return " && ".join(parts) if parts else "true"


def snake(name):
    s = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1_\2", name)
    s = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", s)
    s = s.lower()
    return s + "_" if s in CPP_KEYWORDS else s


class Field:
    def __init__(self, js, msg, path):
        self.name = js["name"]
        self.type = js["type"]
        self.path = f"{path}.{self.name}"
        self.member = snake(self.name)
        self.versions = Versions(js.get("versions"), self.path)
        self.nullable = Versions(js.get("nullableVersions"), self.path)
        self.tagged = Versions(js.get("taggedVersions"), self.path)
        self.tag = js.get("tag")
        self.default = js.get("default")
        self.about = js.get("about", "")
        if self.versions.empty():
            raise SchemaError(f"{self.path}: no versions")
        if not self.tagged.empty() and self.tag is None:
            raise SchemaError(f"{self.path}: taggedVersions without tag")
        if not self.tagged.empty() and (self.tagged.lo < msg.flexible.lo):
            raise SchemaError(f"{self.path}: tagged in a non-flexible version")
        self.is_array = self.type.startswith("[]")
        self.elem = self.type[2:] if self.is_array else self.type
        self.struct = None
        if self.elem not in PRIMITIVES:
            if "fields" in js:
                self.struct = Struct(self.elem, js["fields"], msg, self.path)
                msg.add_struct(self.struct)
            else:
                self.struct = msg.find_struct(self.elem, self.path)
            if not self.is_array and not self.nullable.empty():
                raise SchemaError(f"{self.path}: nullable struct fields are not supported")
        elif "fields" in js:
            raise SchemaError(f"{self.path}: primitive type with fields")
        if self.elem == "records" and self.is_array:
            raise SchemaError(f"{self.path}: arrays of records")
        if not self.nullable.empty() and not (self.is_array or self.elem in ("string", "bytes", "records")):
            raise SchemaError(f"{self.path}: type {self.type} cannot be nullable")

    # --- C++ types -----------------------------------------------------------
    def nullable_type(self):
        return not self.nullable.empty()

    def elem_cpp(self):
        e = self.elem
        if e in INT_TYPES:
            return INT_TYPES[e][0]
        return {"bool": "bool", "float64": "double", "uuid": "Uuid", "string": "std::string",
                "bytes": "Bytes", "records": "Records"}.get(e, e)

    def cpp_type(self):
        if self.is_array:
            t = f"std::vector<{self.elem_cpp()}>"
            return f"std::optional<{t}>" if self.nullable_type() else t
        if self.elem in ("string", "bytes") and self.nullable_type():
            return f"std::optional<{self.elem_cpp()}>"
        return self.elem_cpp()

    def default_is_null(self):
        return str(self.default).lower() == "null" if self.default is not None else False

    def int_default(self):
        d = str(self.default).strip()
        v = int(d, 16) if d.lower().startswith(("0x", "-0x")) else int(d)
        return v

    def int_literal(self, v):
        ctype = INT_TYPES[self.elem][0]
        if self.elem == "int64":
            if v == -(1 << 63):
                return "std::numeric_limits<int64_t>::min()"
            return str(v) if -(1 << 31) < v < (1 << 31) else f"INT64_C({v})"
        if v == -(1 << 31):
            return "std::numeric_limits<int32_t>::min()"
        return str(v) if ctype in ("int32_t", "int64_t") or v >= 0 else f"static_cast<{ctype}>({v})"

    def initializer(self):
        """Default member initializer (C++), or '' for value-initialization."""
        if self.is_array:
            if self.nullable_type() and not self.default_is_null():
                return f" = {self.cpp_type()[len('std::optional<'):-1]}{{}}"
            return ""
        e = self.elem
        if e in INT_TYPES:
            return f" = {self.int_literal(self.int_default())}" if self.default is not None else " = 0"
        if e == "bool":
            return " = true" if str(self.default).lower() == "true" else " = false"
        if e == "float64":
            return f" = {float(self.default)}" if self.default is not None else " = 0.0"
        if e == "uuid":
            return "{}"
        if e == "string":
            if self.default_is_null():
                return ""
            if self.default:
                return f" = {json.dumps(self.default)}"
            return " = std::string()" if self.nullable_type() else ""
        if e == "bytes":
            return "" if self.default_is_null() or not self.nullable_type() else " = Bytes()"
        return ""

    def non_default_expr(self, v):
        """C++ expression: is member `v` different from its default (tagged fields)."""
        if self.is_array:
            if self.nullable_type():
                return f"(!{v}.has_value() || !{v}->empty())" if not self.default_is_null() else f"{v}.has_value()"
            return f"!{v}.empty()"
        e = self.elem
        if e == "string" or e == "bytes":
            if self.nullable_type():
                if self.default_is_null():
                    return f"{v}.has_value()"
                dflt = json.dumps(self.default or "") if e == "string" else "Bytes()"
                return f"(!{v}.has_value() || *{v} != {dflt})"
            if e == "string" and self.default:
                return f"{v} != {json.dumps(self.default)}"
            return f"!{v}.empty()"
        if self.struct is not None:
            return f"!({v} == {self.struct.cpp_name}{{}})"
        if e == "uuid":
            return f"{v} != Uuid{{}}"
        init = self.initializer()
        dflt = init[3:] if init.startswith(" = ") else "{}"
        return f"{v} != {dflt}"


class Struct:
    def __init__(self, name, fields_js, msg, path):
        self.name = name
        self.msg = msg
        self.path = path
        self.cpp_name = name if msg is None or name == msg.name else f"{msg.name}::{name}"
        self.fields = [Field(f, msg, path) for f in fields_js]
        tags = [f.tag for f in self.fields if not f.tagged.empty()]
        if len(tags) != len(set(tags)):
            raise SchemaError(f"{path}: duplicate tag")
        names = [f.member for f in self.fields]
        if len(names) != len(set(names)):
            raise SchemaError(f"{path}: duplicate field")

    def fn_suffix(self):
        return self.cpp_name.replace("::", "_")

    def regular(self):
        return [f for f in self.fields]

    def tagged_fields(self):
        return sorted([f for f in self.fields if not f.tagged.empty()], key=lambda f: f.tag)


class Message:
    def __init__(self, js, path):
        self.file = path
        self.name = js["name"]
        self.api_key = int(js["apiKey"])
        self.kind = js["type"]
        if self.kind not in ("request", "response"):
            raise SchemaError(f"{path}: type must be request or response")
        self.valid = Versions(js["validVersions"], self.name)
        self.flexible = Versions(js.get("flexibleVersions", "none"), self.name)
        self.structs = []  # nested, in dependency order (inner first)
        self.struct_names = {}
        self.top = Struct(self.name, js["fields"], self, self.name)

    def add_struct(self, s):
        if s.name in self.struct_names:
            raise SchemaError(f"{s.path}: struct {s.name} declared twice")
        if s.name == self.name:
            raise SchemaError(f"{s.path}: struct named like its message")
        self.struct_names[s.name] = s
        self.structs.append(s)

    def find_struct(self, name, path):
        if name not in self.struct_names:
            raise SchemaError(f"{path}: unknown type {name}")
        return self.struct_names[name]

    def api_name(self):
        return self.name[: -len("Request")] if self.kind == "request" else self.name[: -len("Response")]

    def first_flexible(self):
        return self.flexible.lo if not self.flexible.empty() else MAX_VERSION

    def versions(self):
        return range(self.valid.lo, self.valid.hi + 1)


def load_schema(path):
    with open(path, encoding="utf-8") as f:
        text = "\n".join(line for line in f.read().splitlines() if not line.strip().startswith("//"))
    try:
        return Message(json.loads(text), os.path.basename(path))
    except (KeyError, ValueError) as e:
        raise SchemaError(f"{path}: {e}") from e


# --- minimum encoded sizes (array-count sanity checks) -------------------------
def field_min_size(f, v, flex):
    if f.is_array or f.elem in ("string", "bytes", "records"):
        if flex:
            return 1
        return 2 if f.elem == "string" and not f.is_array else 4
    if f.struct is not None:
        return struct_min_size(f.struct, v, flex)
    return FIXED_SIZE[f.elem]


def struct_min_size(s, v, flex):
    n = 1 if flex else 0
    for f in s.fields:
        if f.versions.contains(v) and not f.tagged.contains(v):
            n += field_min_size(f, v, flex)
    return n


def elem_min_size(f, msg):
    sizes = []
    for v in msg.versions():
        if not f.versions.contains(v):
            continue
        flex = msg.flexible.contains(v)
        if f.struct is not None:
            sizes.append(struct_min_size(f.struct, v, flex))
        elif f.elem == "string":
            sizes.append(1 if flex else 2)
        elif f.elem == "bytes":
            sizes.append(1 if flex else 4)
        else:
            sizes.append(FIXED_SIZE[f.elem])
    m = min(sizes) if sizes else 1
    if m == 0:
        raise SchemaError(f"{f.path}: array element may encode to zero bytes")
    return m


# --- header ----------------------------------------------------------------------
def emit_struct_decl(out, s, msg, indent):
    pad = " " * indent
    out.append(f"{pad}struct {s.name} {{")
    if s is msg.top:
        out.append(f"{pad}  static constexpr int16_t kApiKey = {msg.api_key};")
        out.append(f"{pad}  static constexpr int16_t kMinVersion = {msg.valid.lo};")
        out.append(f"{pad}  static constexpr int16_t kMaxVersion = {msg.valid.hi};")
        out.append(f"{pad}  static constexpr int16_t kFirstFlexibleVersion = {msg.first_flexible()};")
        out.append(f"{pad}  static constexpr std::string_view kName = \"{msg.name}\";")
        out.append("")
        for ns in msg.structs:
            emit_struct_decl(out, ns, msg, indent + 2)
            out.append("")
    for f in s.fields:
        notes = [f"v{f.versions.lo}" + ("+" if f.versions.hi == MAX_VERSION else f"-{f.versions.hi}")]
        if not f.nullable.empty():
            notes.append(f"nullable v{f.nullable.lo}+" if f.nullable.hi == MAX_VERSION
                         else f"nullable v{f.nullable.lo}-{f.nullable.hi}")
        if not f.tagged.empty():
            notes.append(f"tag {f.tag}")
        about = f" {f.about}" if f.about else ""
        out.append(f"{pad}  {f.cpp_type()} {f.member}{f.initializer()};  // {', '.join(notes)}.{about}")
    if s is msg.top:
        out.append("")
        out.append(f"{pad}  // Appends the body (no header) in `version`; version must be in")
        out.append(f"{pad}  // [kMinVersion, kMaxVersion]. Never fails; strings longer than 32767")
        out.append(f"{pad}  // bytes are cut to 32767.")
        out.append(f"{pad}  void encode(Writer& out, int16_t version) const;")
        out.append(f"{pad}  // Reads the body; leaves `in` after it. kTruncated/kCorruption name the")
        out.append(f"{pad}  // field; kUnsupported for a version outside the range. `records` fields")
        out.append(f"{pad}  // point into `in`'s buffer.")
        out.append(f"{pad}  static Result<{s.name}> decode(Reader& in, int16_t version);")
    out.append(f"{pad}  bool operator==(const {s.name}&) const = default;")
    out.append(f"{pad}}};")


def gen_header(msgs):
    out = [
        "// Generated by src/protocol/codegen/gen.py from src/protocol/schema/*.json. Do not edit.",
        "#pragma once",
        "",
        "#include <cstdint>",
        "#include <limits>",
        "#include <optional>",
        "#include <string>",
        "#include <string_view>",
        "#include <type_traits>",
        "#include <utility>",
        "#include <vector>",
        "",
        "#include \"common/bytes.h\"",
        "#include \"common/result.h\"",
        "#include \"protocol/format.h\"",
        "#include \"protocol/records.h\"",
        "#include \"protocol/uuid.h\"",
        "",
        "namespace herald::protocol {",
        "",
    ]
    for m in msgs:
        out.append(f"// {m.name}: api key {m.api_key}, versions {m.valid.lo}-{m.valid.hi}, "
                   + (f"flexible from v{m.flexible.lo}." if not m.flexible.empty() else "never flexible."))
        emit_struct_decl(out, m.top, m, 0)
        out.append(f"// One line for logs: {m.name}{{field=value, ...}} (protocol/format.h).")
        out.append(f"std::string to_string(const {m.name}& m);")
        out.append("")
    reqs = {m.api_key: m for m in msgs if m.kind == "request"}
    resps = {m.api_key: m for m in msgs if m.kind == "response"}
    out += [
        "// Calls f(std::type_identity<XRequest>{}, std::type_identity<XResponse>{}) for the",
        "// API `api_key`. If f returns void, the result is a bool: false for an unknown key.",
        "// Otherwise it is std::optional<R>, empty for an unknown key.",
        "//",
        "//   bool known = with_request_type(header.api_key, [&](auto req, auto resp) {",
        "//     using Req = typename decltype(req)::type;   // e.g. ProduceRequest",
        "//     ...",
        "//   });",
        "template <class F>",
        "auto with_request_type(int16_t api_key, F&& f) {",
        f"  using R = std::invoke_result_t<F&, std::type_identity<{msgs[0].api_name()}Request>,",
        f"                                 std::type_identity<{msgs[0].api_name()}Response>>;",
        "  if constexpr (std::is_void_v<R>) {",
        "    switch (api_key) {",
    ]
    for k in sorted(reqs):
        n = reqs[k].api_name()
        out.append(f"      case {k}: f(std::type_identity<{n}Request>{{}}, std::type_identity<{n}Response>{{}}); return true;")
    out += ["      default: return false;", "    }", "  } else {", "    switch (api_key) {"]
    for k in sorted(reqs):
        n = reqs[k].api_name()
        out.append(f"      case {k}: return std::optional<R>(std::in_place, f(std::type_identity<{n}Request>{{}}, "
                   f"std::type_identity<{n}Response>{{}}));")
    out += ["      default: return std::optional<R>();", "    }", "  }", "}", ""]
    out.append("}  // namespace herald::protocol")
    out.append("")
    for m in msgs:
        out.append(f"template <>\nstruct fmt::formatter<herald::protocol::{m.name}>\n"
                   f"    : herald::protocol::format::ToStringFormatter<herald::protocol::{m.name}> {{}};")
    for k in reqs:
        if k not in resps:
            raise SchemaError(f"{reqs[k].name}: no response schema")
        if (reqs[k].valid.lo, reqs[k].valid.hi, reqs[k].flexible.lo) != (resps[k].valid.lo, resps[k].valid.hi,
                                                                         resps[k].flexible.lo):
            raise SchemaError(f"{reqs[k].name}: versions differ from its response")
    return "\n".join(out) + "\n"


# --- codec bodies --------------------------------------------------------------------
def write_value_stmt(f, expr, w, indent):
    """Statements writing one value of f's element type (expr) to Writer w."""
    pad = " " * indent
    e = f.elem
    if f.struct is not None:
        return [f"{pad}write_{f.struct.fn_suffix()}({w}, version, flex, {expr});"]
    if e in INT_TYPES:
        return [f"{pad}{w}.put_{INT_TYPES[e][2]}({expr});"]
    return [f"{pad}" + {
        "bool": f"{w}.put_u8({expr} ? 1 : 0);",
        "float64": f"{w}.put_f64({expr});",
        "uuid": f"{w}.put_bytes(ByteSpan({expr}));",
        "string": f"wire::write_string({w}, {expr}, flex);",
        "bytes": f"wire::write_bytes({w}, {expr}, flex);",
    }[e]]


def write_field_stmts(f, m, w, indent, msg):
    """Null in a version where the field is not nullable is written as empty."""
    pad = " " * indent
    v = f"{m}.{f.member}"
    nullable = f.nullable.cond(msg.valid)
    if f.is_array:
        lines = []
        if f.nullable_type():
            lines.append(f"{pad}if (!{v}) {{")
            if nullable == "true":
                lines.append(f"{pad}  wire::write_null_array({w}, flex);")
            else:
                lines.append(f"{pad}  if ({nullable}) {{")
                lines.append(f"{pad}    wire::write_null_array({w}, flex);")
                lines.append(f"{pad}  }} else {{")
                lines.append(f"{pad}    wire::write_array_length({w}, 0, flex);")
                lines.append(f"{pad}  }}")
            lines.append(f"{pad}}} else {{")
            inner, arr = indent + 2, f"(*{v})"
        else:
            inner, arr = indent, v
        p2 = " " * inner
        lines.append(f"{p2}wire::write_array_length({w}, {arr}.size(), flex);")
        lines.append(f"{p2}for (const auto& e : {arr}) {{")
        lines += write_value_stmt(f, "e", w, inner + 2)
        lines.append(f"{p2}}}")
        if f.nullable_type():
            lines.append(f"{pad}}}")
        return lines
    extra = "" if nullable == "true" else f", {nullable}"
    if f.elem == "records":
        return [f"{pad}wire::write_records({w}, {v}, flex{extra});"]
    if f.elem in ("string", "bytes") and f.nullable_type():
        return [f"{pad}wire::write_nullable_{f.elem}({w}, {v}, flex{extra});"]
    return write_value_stmt(f, v, w, indent)


def read_value_stmts(f, target, where, indent, msg, rd="r"):
    """Statements reading one element of f's type into lvalue `target`."""
    pad = " " * indent
    e = f.elem
    if f.struct is not None:
        return [f"{pad}HERALD_TRY(read_{f.struct.fn_suffix()}({rd}, version, flex, {target}));"]
    if e == "string":
        return [f"{pad}HERALD_TRY(wire::read_string({rd}, flex, {target}, {where}));"]
    if e == "bytes":
        return [f"{pad}HERALD_TRY(wire::read_bytes({rd}, flex, {target}, {where}));"]
    return [f"{pad}if (!wire::get({rd}, {target})) return wire::truncated({where});"]


def read_field_stmts(f, m, indent, msg, rd="r"):
    pad = " " * indent
    v = f"{m}.{f.member}"
    where = f"\"{f.path}\""
    nullable_cond = f.nullable.cond(msg.valid)
    if f.is_array:
        lines = [f"{pad}{{",
                 f"{pad}  int64_t n = 0;",
                 f"{pad}  HERALD_TRY(wire::read_array_length({rd}, flex, {elem_min_size(f, msg)}, n, {where}));"]
        if f.nullable_type():
            lines += [f"{pad}  if (n < 0) {{",
                      f"{pad}    if (!({nullable_cond})) return wire::null_not_allowed({where});",
                      f"{pad}    {v}.reset();",
                      f"{pad}  }} else {{",
                      f"{pad}    auto& vec = {v}.emplace();"]
        else:
            lines += [f"{pad}  if (n < 0) return wire::null_not_allowed({where});",
                      f"{pad}  {{",
                      f"{pad}    auto& vec = {v};"]
        lines += [f"{pad}    HERALD_TRY(wire::charge_decode(static_cast<size_t>(n) * sizeof(vec[0]), {where}));",
                  f"{pad}    vec.clear();",
                  f"{pad}    vec.resize(static_cast<size_t>(n));",
                  f"{pad}    for (auto& e : vec) {{"]
        lines += read_value_stmts(f, "e", where, indent + 6, msg, rd)
        lines += [f"{pad}    }}", f"{pad}  }}", f"{pad}}}"]
        return lines
    if f.elem == "records":
        return [f"{pad}HERALD_TRY(wire::read_records({rd}, flex, {nullable_cond}, {v}, {where}));"]
    if f.elem in ("string", "bytes") and f.nullable_type():
        return [f"{pad}HERALD_TRY(wire::read_nullable_{f.elem}({rd}, flex, {nullable_cond}, {v}, {where}));"]
    return read_value_stmts(f, v, where, indent, msg, rd)


def gen_struct_codec(s, msg):
    fn = s.fn_suffix()
    valid = msg.valid
    w_lines = [f"void write_{fn}(Writer& w, int16_t version, bool flex, const {s.cpp_name}& m) {{",
               "  (void)version;", "  (void)flex;"]
    r_lines = [f"Result<void> read_{fn}(Reader& r, int16_t version, bool flex, {s.cpp_name}& m) {{",
               "  (void)version;", "  (void)flex;"]
    for f in s.fields:
        # a field is regular in versions where it exists and is not tagged
        if f.tagged.empty():
            cond = f.versions.cond(valid)
        else:
            cond = f"({f.versions.cond(valid)}) && !({f.tagged.cond(valid)})"
            if f.tagged.lo <= f.versions.lo and f.tagged.hi >= f.versions.hi:
                continue  # tagged wherever it exists
        if cond == "false":
            continue
        if cond == "true":
            w_lines += write_field_stmts(f, "m", "w", 2, msg)
            r_lines += read_field_stmts(f, "m", 2, msg)
        else:
            w_lines.append(f"  if ({cond}) {{")
            w_lines += write_field_stmts(f, "m", "w", 4, msg)
            w_lines.append("  }")
            r_lines.append(f"  if ({cond}) {{")
            r_lines += read_field_stmts(f, "m", 4, msg)
            r_lines.append("  }")
    tagged = s.tagged_fields()
    if msg.flexible.empty():
        pass
    elif not tagged:
        w_lines.append("  if (flex) w.put_u8(0);  // empty tagged-field section")
        r_lines.append(f"  if (flex) HERALD_TRY(wire::skip_tagged_fields(r, \"{s.path}\"));")
    else:
        w_lines.append("  if (flex) {")
        for i, f in enumerate(tagged):
            cond = f.versions.intersect(f.tagged).cond(valid)
            w_lines.append(f"    const bool t{i} = {cond} && {f.non_default_expr('m.' + f.member)};")
        w_lines.append("    w.put_uvarint(" + " + ".join(f"uint64_t{{t{i}}}" for i in range(len(tagged))) + ");")
        for i, f in enumerate(tagged):
            w_lines.append(f"    if (t{i}) {{")
            w_lines.append("      Writer t;")
            w_lines += write_field_stmts(f, "m", "t", 6, msg)
            w_lines.append(f"      wire::write_tagged_field(w, {f.tag}, t);")
            w_lines.append("    }")
        w_lines.append("  }")
        r_lines += ["  if (flex) {",
                    "    uint32_t count = 0;",
                    f"    HERALD_TRY(wire::read_uvarint32(r, count, \"{s.path} tagged fields\"));",
                    "    for (uint32_t i = 0; i < count; ++i) {",
                    "      uint32_t tag = 0;",
                    "      ByteSpan body;",
                    f"      HERALD_TRY(wire::read_tagged_field(r, tag, body, \"{s.path} tagged fields\"));",
                    "      Reader tr(body);",
                    "      switch (tag) {"]
        for f in tagged:
            cond = f.versions.intersect(f.tagged).cond(valid)
            r_lines.append(f"        case {f.tag}:")
            r_lines.append(f"          if ({cond}) {{")
            # a tagged value is read from its own sub-reader, limited to its size
            r_lines += read_field_stmts(f, "m", 12, msg, rd="tr")
            r_lines.append("          }")
            r_lines.append("          break;")
        r_lines += ["        default:",
                    "          break;  // unknown tag: skipped",
                    "      }",
                    "    }",
                    "  }"]
    w_lines.append("}")
    r_lines.append("  return {};")
    r_lines.append("}")
    return w_lines, r_lines


def append_elem_expr(f):
    """Lambda rendering one element of f's element type."""
    if f.struct is not None:
        return f"[](std::string& o, const auto& e) {{ append_{f.struct.fn_suffix()}(o, e); }}"
    return "[](std::string& o, const auto& e) { format::append(o, e); }"


def gen_struct_appender(s):
    lines = [f"void append_{s.fn_suffix()}(std::string& out, const {s.cpp_name}& m) {{"]
    for i, f in enumerate(s.fields):
        sep = "{" if i == 0 else ", "
        lines.append(f"  out += \"{sep}{f.member}=\";")
        if f.is_array:
            lines.append(f"  format::append_list(out, m.{f.member}, {append_elem_expr(f)});")
        elif f.struct is not None:
            lines.append(f"  append_{f.struct.fn_suffix()}(out, m.{f.member});")
        else:
            lines.append(f"  format::append(out, m.{f.member});")
    if not s.fields:
        lines.append("  out += '{';")
    lines.append("  out += '}';")
    lines.append("}")
    return lines


def gen_codec_cc(msgs, shard):
    out = [
        "// Generated by src/protocol/codegen/gen.py from src/protocol/schema/*.json. Do not edit.",
        "#include \"protocol/messages.h\"",
        "#include \"protocol/wire.h\"",
        "",
        "namespace herald::protocol {",
        "",
        "namespace {",
        "",
    ]
    pub = []
    for m in msgs:
        for s in m.structs + [m.top]:
            w, r = gen_struct_codec(s, m)
            out += w + [""] + r + [""] + gen_struct_appender(s) + [""]
        flexcond = "false" if m.flexible.empty() else f"version >= {m.flexible.lo}"
        pub += [
            f"void {m.name}::encode(Writer& out, int16_t version) const {{",
            f"  HERALD_CHECK(version >= kMinVersion && version <= kMaxVersion, \"{m.name} v{{}} is not generated\", version);",
            f"  write_{m.name}(out, version, {flexcond}, *this);",
            "}",
            "",
            f"Result<{m.name}> {m.name}::decode(Reader& in, int16_t version) {{",
            "  if (version < kMinVersion || version > kMaxVersion) {",
            f"    return wire::unsupported_version(\"{m.name}\", version);",
            "  }",
            f"  {m.name} m;",
            f"  HERALD_TRY(read_{m.name}(in, version, {flexcond}, m));",
            "  return m;",
            "}",
            "",
            f"std::string to_string(const {m.name}& m) {{",
            f"  std::string out = \"{m.name}\";",
            f"  append_{m.name}(out, m);",
            "  return out;",
            "}",
            "",
        ]
    out += ["}  // namespace", ""] + pub + ["}  // namespace herald::protocol", ""]
    return "\n".join(out)


# --- api table -------------------------------------------------------------------------
def gen_api_table(msgs):
    reqs = sorted((m for m in msgs if m.kind == "request"), key=lambda m: m.api_key)
    out = ["// Generated by src/protocol/codegen/gen.py. Do not edit. Included by protocol/api_keys.h.",
           "",
           "// Kafka API keys with a generated codec.",
           "enum ApiKey : int16_t {"]
    for m in reqs:
        out.append(f"  k{m.api_name()} = {m.api_key},")
    out += ["};", "",
            "// One row per generated request type, ordered by api key.",
            "inline constexpr ApiInfo kApiTable[] = {"]
    for m in reqs:
        out.append(f"    {{{m.api_key}, \"{m.api_name()}\", {m.valid.lo}, {m.valid.hi}, {m.first_flexible()}}},")
    out += ["};", ""]
    return "\n".join(out)


# --- test samples -----------------------------------------------------------------------
def sample_value(f, target, indent, msg):
    pad = " " * indent
    e = f.elem
    if f.struct is not None:
        return [f"{pad}fill_{f.struct.fn_suffix()}({target}, version, g);"]
    if e in INT_TYPES:
        return [f"{pad}{target} = g.next_int<{INT_TYPES[e][0]}>();"]
    return [pad + {
        "bool": f"{target} = g.next_bool();",
        "float64": f"{target} = g.next_double();",
        "uuid": f"{target} = g.next_uuid();",
        "string": f"{target} = g.next_string();",
        "bytes": f"{target} = g.next_bytes();",
        "records": f"{target} = g.next_records();",
    }[e]]


def sample_field(f, msg, indent):
    pad = " " * indent
    v = f"m.{f.member}"
    nullable = f.nullable.cond(msg.valid)
    lines = []
    if f.nullable_type() or f.elem == "records":
        lines.append(f"{pad}if (({nullable}) && g.next_null()) {{")
        lines.append(f"{pad}  {v} = {{}};" if f.elem != "records" else f"{pad}  {v} = Records();")
        lines.append(f"{pad}}} else {{")
        indent += 2
        pad2 = " " * indent
    else:
        pad2 = pad
    if f.is_array:
        tgt = f"{v}.emplace()" if f.nullable_type() else v
        lines.append(f"{pad2}{{")
        lines.append(f"{pad2}  auto& vec = {tgt};")
        lines.append(f"{pad2}  vec.resize(g.next_count());")
        lines.append(f"{pad2}  for (auto& e : vec) {{")
        lines += sample_value(f, "e", indent + 4, msg)
        lines.append(f"{pad2}  }}")
        lines.append(f"{pad2}}}")
    elif f.nullable_type() and f.elem != "records":
        lines += sample_value(f, f"{v}.emplace()", indent, msg)
    else:
        lines += sample_value(f, v, indent, msg)
    if f.nullable_type() or f.elem == "records":
        lines.append(f"{pad}}}")
    return lines


def gen_samples(msgs):
    h = ["// Generated by src/protocol/codegen/gen.py. Do not edit. Test support only.",
         "#pragma once",
         "",
         "#include <cstdint>",
         "#include <memory>",
         "#include <string>",
         "",
         "#include \"protocol/messages.h\"",
         "",
         "namespace herald::protocol::testing {",
         "",
         "// Deterministic value source for fill_sample (xorshift).",
         "class SampleGen {",
         " public:",
         "  explicit SampleGen(uint64_t seed) : s_(seed * 2654435761u + 1) {}",
         "  uint64_t next() {",
         "    s_ ^= s_ << 13;",
         "    s_ ^= s_ >> 7;",
         "    s_ ^= s_ << 17;",
         "    return s_;",
         "  }",
         "  template <class T>",
         "  T next_int() { return static_cast<T>(next()); }",
         "  bool next_bool() { return (next() & 1) != 0; }",
         "  bool next_null() { return next() % 4 == 0; }",
         "  size_t next_count() { return static_cast<size_t>(next() % 3); }",
         "  double next_double() { return static_cast<double>(next() % 1000000) / 8.0; }",
         "  Uuid next_uuid() {",
         "    Uuid u;",
         "    for (auto& b : u) b = static_cast<uint8_t>(next());",
         "    return u;",
         "  }",
         "  std::string next_string() {",
         "    std::string s(next() % 12, 'a');",
         "    for (auto& c : s) c = static_cast<char>('a' + next() % 26);",
         "    return s;",
         "  }",
         "  Bytes next_bytes() {",
         "    Bytes b(next() % 20);",
         "    for (auto& c : b) c = static_cast<uint8_t>(next());",
         "    return b;",
         "  }",
         "  Records next_records() { return Records::copy_of(next_bytes()); }",
         "",
         " private:",
         "  uint64_t s_;",
         "};",
         "",
         "// Sets every field that exists in `version` to a generated value (nullable",
         "// fields are sometimes null, arrays hold 0-2 elements); other fields keep",
         "// their defaults, so encode(version) -> decode(version) must give `m` back.",
         ]
    cc = ["// Generated by src/protocol/codegen/gen.py. Do not edit.",
          "#include \"protocol/samples.h\"",
          "",
          "namespace herald::protocol::testing {",
          "namespace {",
          ""]
    pub = []
    for m in msgs:
        h.append(f"void fill_sample({m.name}& m, int16_t version, SampleGen& g);")
        for s in m.structs + [m.top]:
            cc.append(f"void fill_{s.fn_suffix()}({s.cpp_name}& m, int16_t version, SampleGen& g) {{")
            cc.append("  (void)version;")
            cc.append("  (void)g;")
            for f in s.fields:
                cond = f.versions.cond(m.valid)
                if cond == "false":
                    continue
                cc.append(f"  if ({cond}) {{")
                cc += sample_field(f, m, 4)
                cc.append("  }")
            cc.append("}")
            cc.append("")
        pub += [f"void fill_sample({m.name}& m, int16_t version, SampleGen& g) {{",
                f"  fill_{m.name}(m, version, g);", "}", ""]
    h += ["", "}  // namespace herald::protocol::testing", ""]
    cc += ["}  // namespace", ""] + pub + ["}  // namespace herald::protocol::testing", ""]
    return "\n".join(h), "\n".join(cc)


def write_file(path, text):
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--shards", type=int, default=4)
    ap.add_argument("schemas", nargs="+")
    args = ap.parse_args()
    try:
        msgs = [load_schema(p) for p in sorted(args.schemas)]
        msgs.sort(key=lambda m: (m.api_key, m.kind))
        names = [m.name for m in msgs]
        if len(names) != len(set(names)):
            raise SchemaError("duplicate message name")
        header = gen_header(msgs)
        shards = [[] for _ in range(args.shards)]
        # a request and its response share a shard; APIs are dealt round-robin
        keys = sorted({m.api_key for m in msgs})
        for m in msgs:
            shards[keys.index(m.api_key) % args.shards].append(m)
        codecs = [gen_codec_cc(s, k) for k, s in enumerate(shards)]
        table = gen_api_table(msgs)
        sh, scc = gen_samples(msgs)
    except SchemaError as e:
        print(f"gen.py: error: {e}", file=sys.stderr)
        return 1
    d = os.path.join(args.out, "protocol")
    os.makedirs(d, exist_ok=True)
    write_file(os.path.join(d, "messages.h"), header)
    for k, text in enumerate(codecs):
        write_file(os.path.join(d, f"messages_{k}.cc"), text)
    write_file(os.path.join(d, "api_table.inc"), table)
    write_file(os.path.join(d, "samples.h"), sh)
    write_file(os.path.join(d, "samples.cc"), scc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
