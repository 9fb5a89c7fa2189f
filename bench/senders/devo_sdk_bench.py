"""devo-sdk's sender as a throughput baseline: N identical events over mutual TLS (or plain TCP).
Usage: devo_sdk_bench.py PORT N TAG DATE HOST MSG_FILE [CHAIN CERT KEY]"""
import sys, time, warnings
from devo.sender.data import Sender, SenderConfigSSL, SenderConfigTCP

warnings.simplefilter("ignore")
port, n, tag, date, host, msg_file = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5], sys.argv[6]
msg = open(msg_file, encoding="utf-8").read()
if len(sys.argv) > 9:
    cfg = SenderConfigSSL(address=("127.0.0.1", port), chain=sys.argv[7], cert=sys.argv[8], key=sys.argv[9])
else:
    cfg = SenderConfigTCP(address=("127.0.0.1", port))
con = Sender(config=cfg)
t = time.time()
for _ in range(n):
    con.send(tag=tag, msg=msg, date=date, hostname=host)
con.close()
print("%.3f" % (time.time() - t))
