#!/usr/bin/python3
"""Checks rpcboot-codegen's Thrift schema (<stem>.thrift.json, what rpcboot.ThriftReflection
serves and `rpcboot call` writes with) against the stock Thrift compiler's reading of the
emitted .thrift files (`thrift --gen json`): every service, method, parameter, result, struct
field (id, name, wire type, optional) and enum value must agree.

Usage: check_thrift_schema.py IDL_DIR THRIFT_JSON_DIR
  IDL_DIR: the emitted <stem>.thrift and <stem>.thrift.json files
  THRIFT_JSON_DIR: what `thrift --gen json` wrote for each <stem>.thrift
"""
import glob
import json
import os
import sys

PRIMITIVES = {"bool": "bool", "i8": "i8", "i16": "i16", "i32": "i32", "i64": "i64",
              "u64": "i64", "double": "double", "string": "string", "binary": "binary"}

problems = []


def fail(where, what):
    problems.append(f"{where}: {what}")


class Theirs:
    """The stock compiler's view: structs and enums by (package, name), services by full name."""

    def __init__(self, json_dir):
        self.structs, self.enums, self.services, self.package_of = {}, {}, {}, {}
        files = {}
        for path in glob.glob(os.path.join(json_dir, "*.json")):
            stem = os.path.basename(path)[:-len(".json")]
            files[stem] = json.load(open(path))
            self.package_of[stem] = files[stem].get("namespaces", {}).get("cpp", "")
        for stem, doc in files.items():
            package = self.package_of[stem]
            for s in doc.get("structs", []):
                self.structs[(package, s["name"])] = (stem, s)
            for e in doc.get("enums", []):
                self.enums[(package, e["name"])] = e
            for svc in doc.get("services", []):
                full = f"{package}.{svc['name']}" if package else svc["name"]
                self.services[full] = (stem, svc)

    def resolve(self, stem, cls):
        """A `class` as the stock compiler writes it ("Point" or "common_types.Point")."""
        if "." in cls:
            other, name = cls.split(".", 1)
            return (self.package_of.get(other, other), name)
        return (self.package_of[stem], cls)


def split(full):
    return tuple(full.rsplit(".", 1)) if "." in full else ("", full)


def compare_type(ours, types, their_id, their_type, stem, theirs, where, seen):
    if isinstance(ours, str) and ours in PRIMITIVES:
        if their_id != PRIMITIVES[ours]:
            fail(where, f"schema says {ours}, thrift reads {their_id}")
        return
    if isinstance(ours, str) and ours == "void":
        if their_id != "void":
            fail(where, f"schema says void, thrift reads {their_id}")
        return
    if isinstance(ours, str):
        definition = types.get(ours)
        if definition is None:
            fail(where, f"type {ours} is not in the schema's types")
        elif "enum" in definition:
            # thrift --gen json writes an enum-typed value as its wire type.
            if their_id != "i32":
                fail(where, f"enum {ours}: thrift reads {their_id}")
            enum = theirs.enums.get(split(ours))
            if enum is None:
                fail(where, f"thrift has no enum {ours}")
            elif [[m["name"], m["value"]] for m in enum["members"]] != definition["enum"]:
                fail(where, f"enum {ours}: {definition['enum']} vs {enum['members']}")
        else:
            if their_id != "struct" or their_type is None:
                fail(where, f"struct {ours}: thrift reads {their_id}")
                return
            key = theirs.resolve(stem, their_type["class"])
            if key != split(ours):
                fail(where, f"struct {ours}: thrift reads {their_type['class']}")
                return
            if ours not in seen:
                seen.add(ours)
                their_stem, their_struct = theirs.structs[key]
                compare_fields(definition["struct"], types, their_struct["fields"], their_stem,
                               theirs, ours, seen, params=False)
        return
    if "list" in ours:
        if their_id != "list":
            fail(where, f"schema says a list, thrift reads {their_id}")
            return
        compare_type(ours["list"], types, their_type["elemTypeId"], their_type.get("elemType"),
                     stem, theirs, where + "[]", seen)
        return
    if "map" in ours:
        if their_id != "map":
            fail(where, f"schema says a map, thrift reads {their_id}")
            return
        compare_type(ours["map"][0], types, their_type["keyTypeId"], their_type.get("keyType"),
                     stem, theirs, where + " key", seen)
        compare_type(ours["map"][1], types, their_type["valueTypeId"],
                     their_type.get("valueType"), stem, theirs, where + " value", seen)
        return
    fail(where, f"not a type: {ours}")


def compare_fields(ours, types, their_fields, stem, theirs, where, seen, params):
    if [f["id"] for f in ours] != [f["key"] for f in their_fields]:
        fail(where, f"ids {[f['id'] for f in ours]} vs {[f['key'] for f in their_fields]}")
        return
    for mine, their in zip(ours, their_fields):
        at = f"{where}.{mine['name']}"
        if mine["name"] != their["name"]:
            fail(at, f"named {their['name']} in the .thrift")
        # A Thrift argument cannot be declared optional: an optional parameter is one the caller
        # leaves out. Struct fields must agree.
        if not params and mine.get("optional", False) != (their["required"] == "optional"):
            fail(at, f"optional {mine.get('optional', False)} vs required {their['required']}")
        compare_type(mine["type"], types, their["typeId"], their.get("type"), stem, theirs, at,
                     seen)


def main():
    idl_dir, json_dir = sys.argv[1], sys.argv[2]
    theirs = Theirs(json_dir)
    checked = 0
    for path in sorted(glob.glob(os.path.join(idl_dir, "*.thrift.json"))):
        doc = json.load(open(path))
        if doc.get("rpcboot_thrift_schema") != 1:
            fail(path, "no \"rpcboot_thrift_schema\": 1")
            continue
        for service in doc["services"]:
            name = service["name"]
            if name not in theirs.services:
                fail(path, f"thrift has no service {name}")
                continue
            stem, their = theirs.services[name]
            types, seen = service["types"], set()
            if [m["name"] for m in service["methods"]] != [f["name"] for f in their["functions"]]:
                fail(name, "methods differ")
                continue
            for method, function in zip(service["methods"], their["functions"]):
                where = f"{name}/{method['name']}"
                compare_fields(method["params"], types, function["arguments"], stem, theirs,
                               where, seen, params=True)
                compare_type(method["result"], types, function["returnTypeId"],
                             function.get("returnType"), stem, theirs, where + " result", seen)
                checked += 1
            unused = set(types) - seen - {t for t in types if "enum" in types[t]}
            if unused:
                fail(name, f"types no method reaches: {sorted(unused)}")
    if checked == 0:
        fail(idl_dir, "no method checked: no <stem>.thrift.json with services")
    if problems:
        print("\n".join("FAIL: " + p for p in problems))
        sys.exit(1)
    print(f"thrift schema: {checked} methods agree with thrift-compiler's reading of the IDL")


if __name__ == "__main__":
    main()
