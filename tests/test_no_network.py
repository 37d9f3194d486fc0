"""No traffic at run time: a poolport command that lives long enough for ONNX Runtime's telemetry (about
9 s after its import) and starts every runtime, worker processes included, makes no DNS query and opens
no connection outside this machine. Watched with ``strace -f`` (skipped only where strace is missing)."""

import os
import re
import shutil
import subprocess
import sys
import time

import onnx
import pytest
from onnx import TensorProto, helper

pytestmark = pytest.mark.runtime

LOOPBACK = re.compile(r'inet_addr\("127\.|inet_pton\(AF_INET6, "::1"|inet_pton\(AF_INET6, "::ffff:127\.')


def outside_traffic(trace: str) -> list[str]:
    """The lines of an ``strace -e trace=network`` log that reach outside this machine: a connection or a
    datagram to an address other than loopback (a DNS query is one: port 53), or a connection to the name
    service cache daemon (a host name being resolved)."""
    found = []
    for line in trace.splitlines():
        if not re.search(r"\b(connect|sendto|sendmsg|sendmmsg)\(", line):
            continue
        if "nscd" in line or "htons(53)" in line:
            found.append(line)
        elif re.search(r"sa_family=AF_INET6?\b", line) and not LOOPBACK.search(line):
            found.append(line)
    return found


def test_the_detector_sees_a_dns_query_and_an_outside_connection():
    dns = '9220  connect(8, {sa_family=AF_INET, sin_port=htons(53), sin_addr=inet_addr("10.255.255.53")}, 16) = 0'
    out = '9221  connect(5, {sa_family=AF_INET6, sin6_port=htons(443), inet_pton(AF_INET6, "2001:db8::1", &x)}, 28) = -1'
    local = '9222  connect(5, {sa_family=AF_INET, sin_port=htons(8080), sin_addr=inet_addr("127.0.0.1")}, 16) = 0'
    unix = '9223  connect(3, {sa_family=AF_UNIX, sun_path="/tmp/x"}, 110) = 0'
    assert outside_traffic("\n".join([dns, out, local, unix])) == [dns, out]


@pytest.mark.skipif(shutil.which("strace") is None, reason="strace is not installed")
def test_a_long_check_in_every_runtime_sends_nothing(tmp_path):
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 5, 9, 11])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    node = helper.make_node("AveragePool", ["x"], ["y"], kernel_shape=[3, 3], strides=[2, 2])
    m = helper.make_model(helper.make_graph([node], "g", [x], [y]), opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    model = tmp_path / "m.onnx"
    onnx.save(m, model)
    log = tmp_path / "strace.log"
    # as a user has it: OpenVINO's telemetry stays quiet when CI=true, ONNX Runtime's with the variable
    env = {k: v for k, v in os.environ.items() if k not in ("ORT_DISABLE_TELEMETRY", "CI")}
    # the console script's own code, run in a process that then lives on past ONNX Runtime's telemetry timer
    # (about 9 s after its import): the command alone may end sooner on a fast machine
    code = ("import sys, time\n"
            "start = time.monotonic()\n"
            f"sys.argv = ['poolport', 'check', {str(model)!r}, '--quiet']\n"
            "from poolport.cli.console import main\n"
            "try:\n"
            "    main()\n"
            "except SystemExit as e:\n"
            "    code = e.code\n"
            "time.sleep(max(0.0, 13 - (time.monotonic() - start)))\n"
            "sys.exit(code)\n")
    start = time.monotonic()
    proc = subprocess.run(["strace", "-f", "-qq", "-e", "trace=network", "-o", str(log), sys.executable, "-c", code],
                          capture_output=True, text=True, env=env, timeout=600)
    elapsed = time.monotonic() - start
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert elapsed > 12, f"the process ended after {elapsed:.1f} s: too soon to see ONNX Runtime's telemetry"
    assert not outside_traffic(log.read_text()), "\n".join(outside_traffic(log.read_text())[:5])
