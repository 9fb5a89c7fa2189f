"""Sends a JSON list of events (and optionally a lookup) with Devo's own Python SDK (devo-sdk) over plain TCP.
Usage: devo_sdk_send.py PORT SPEC.json
SPEC: {"hostname": h, "zip": bool, "events": [{"tag", "date", "msg", "multiline"}],
       "lookup": {"name", "date", "headers", "types", "key_index", "action", "rows", "deletions"} | null}"""
import json, sys, warnings
from devo.sender.data import Sender, SenderConfigTCP
from devo.sender.lookup import Lookup

warnings.simplefilter("ignore")
port, spec = int(sys.argv[1]), json.load(open(sys.argv[2]))
host = spec["hostname"]
con = Sender(config=SenderConfigTCP(address=("127.0.0.1", port)))
if spec.get("zip"):
    con.buffer_size(size=51200)
    con.compression_level(6)
for e in spec["events"]:
    if spec.get("zip"):
        con.send(tag=e["tag"].encode(), msg=e["msg"].encode("utf-8"), date=e["date"].encode(), hostname=host.encode(), zip=True)
    else:
        con.send(tag=e["tag"], msg=e["msg"], date=e["date"], hostname=host, multiline=e["multiline"])
if spec.get("zip"):
    con.flush_buffer()
lk = spec.get("lookup")
if lk:
    orig = con.send
    con.send = lambda tag, msg, **kw: orig(tag, msg, date=lk["date"], hostname=host, **kw)
    lookup = Lookup(name=lk["name"], con=con, delay=0)
    args = dict(headers=lk["headers"], key_index=lk["key_index"], action=lk["action"], types=lk["types"])
    lookup.send_headers(event="START", **args)
    for r in lk["rows"]:
        lookup.send_data_line(fields=r, key_index=lk["key_index"])
    for r in lk["deletions"]:
        lookup.send_data_line(fields=r, key_index=lk["key_index"], delete=True)
    lookup.send_headers(event="END", **args)
con.close()
