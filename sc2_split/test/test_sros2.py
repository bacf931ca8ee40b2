"""SROS2 (docs/sros2.md): the shipped policy grants each node exactly the topics and services it uses;
a keystore made the way sros2 makes it verifies; and with security enforced, detections flow while a
process without the keystore, or one whose enclave may not publish `bottleneck`, cannot inject
bottlenecks into the tail.

The last needs Fast DDS built with its security plugins. The ROS wheels' Fast DDS has none: that
test starts a secure node first and skips with the error it gets, and only for that error."""

import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from contextlib import ExitStack
from pathlib import Path

import pytest
from rclpy.node import Node
from sc2_split.ros.topics import BOTTLENECK_QOS
from sc2_split.testing.node_process import node_process
from split_fixtures import head_params, running_camera, tail_params
from sros2_keystore import create_enclave, create_keystore, enclave_grants, permissions_from_policy

from sc2_split_msgs.msg import Bottleneck

POLICY = Path(__file__).parents[1] / "config" / "sros2_policy.xml"
NODES = {  # enclave: (node name, executable, parameter file)
    "/sc2_split/head": ("head", "head_node", "head.yaml"),
    "/sc2_split/tail": ("tail", "tail_node", "tail.yaml"),
    "/sc2_split/overlay": ("overlay", "overlay_node", "head.yaml"),
    "/sc2_split/fallback": ("fallback", "fallback_node", "head.yaml"),
}
# Granted for settings other than the defaults: the compressed camera topic (image_transport
# compressed) and /clock (use_sim_time, e.g. with a bag); the tail's stats to a head with a rate
# ladder (ladder_file), and edge/detections to a tail under a fallback node (remapped detections).
GRANTED_FOR_OPTIONS = {"rt/image/compressed", "rt/clock"}
GRANTED_FOR_NODE_OPTIONS = {"/sc2_split/head": {"rt/stats"}, "/sc2_split/tail": {"rt/edge/detections"}}
FOREIGN_MODEL_ID = "sc2_resnet50_fp@000000000000"
INTRUDER_S = 5.0
FAST_DDS_WITHOUT_SECURITY = "This Fast DDS version doesn't have the security libraries"

# The test's own enclaves, in the shipped policy's format: the test's camera node (split_fixtures.Camera:
# frames out, everything the split nodes publish in; it may publish `bottleneck`, to show that the tail
# counts a foreign one that reaches it), and an intruder with a valid identity but no permission to
# publish `bottleneck`.
NODE_BASICS = """
      <topics publish="ALLOW"><topic>/rosout</topic><topic>/parameter_events</topic></topics>
      <services reply="ALLOW">
        <service>~/describe_parameters</service><service>~/get_parameter_types</service>
        <service>~/get_parameters</service><service>~/list_parameters</service>
        <service>~/set_parameters</service><service>~/set_parameters_atomically</service>
        <service>~/get_type_description</service>
      </services>"""
TEST_POLICY = f"""<?xml version="1.0" encoding="UTF-8"?>
<policy version="0.2.0">
  <enclaves>
    <enclave path="/sc2_split/test"><profiles><profile ns="/" node="test_camera">{NODE_BASICS}
      <topics publish="ALLOW"><topic>image</topic><topic>bottleneck</topic></topics>
      <topics subscribe="ALLOW">
        <topic>bottleneck</topic><topic>detections</topic><topic>stats</topic><topic>label_info</topic>
        <topic>overlay</topic><topic>/diagnostics</topic>
      </topics>
    </profile></profiles></enclave>
    <enclave path="/sc2_split/intruder"><profiles><profile ns="/" node="intruder">{NODE_BASICS}
      <topics subscribe="ALLOW"><topic>detections</topic></topics>
    </profile></profiles></enclave>
  </enclaves>
</policy>
"""

# `python -c INTRUDER SECONDS MODEL_ID [--ros-args ...]`: publishes Bottleneck messages of another
# model for SECONDS and prints how many readers it matched, or that it may not publish at all.
INTRUDER = """
import sys, time, rclpy
from sc2_split.ros.topics import BOTTLENECK_QOS
from sc2_split_msgs.msg import Bottleneck
rclpy.init(args=sys.argv)
node = rclpy.create_node("intruder")
try:
    pub = node.create_publisher(Bottleneck, "bottleneck", BOTTLENECK_QOS)
except Exception as exc:
    print("publisher refused:", str(exc).splitlines()[0])
    sys.exit(0)
matched, deadline = 0, time.monotonic() + float(sys.argv[1])
while time.monotonic() < deadline:
    matched = max(matched, pub.get_subscription_count())
    pub.publish(Bottleneck(model_id=sys.argv[2]))
    time.sleep(0.1)
print("matched", matched)
"""


def dds_topics(node: Node, node_name: str) -> tuple[set[str], set[str]]:
    """(published, subscribed) DDS topics of a running node as the ROS graph shows it, named the way
    DDS permissions name them (rt/ topics, rq/...Request and rr/...Reply for services)."""
    if (node_name, "/") not in node.get_node_names_and_namespaces():
        return set(), set()
    published = {f"rt{n}" for n, _ in node.get_publisher_names_and_types_by_node(node_name, "/")}
    subscribed = {f"rt{n}" for n, _ in node.get_subscriber_names_and_types_by_node(node_name, "/")}
    for service, _ in node.get_service_names_and_types_by_node(node_name, "/"):
        published.add(f"rr{service}Reply")
        subscribed.add(f"rq{service}Request")
    return published, subscribed


def node_overrides(exported_head: dict[str, str], local_model: str = "") -> dict[str, dict[str, object]]:
    """Each enclave's node parameters for the small test model (and the fallback's local detector)."""
    return {
        "/sc2_split/head": head_params(exported_head),
        "/sc2_split/tail": tail_params(exported_head, score_threshold=0.0),
        "/sc2_split/overlay": {},
        "/sc2_split/fallback": {"model_file_path": local_model},
    }


def test_policy_grants_each_node_exactly_the_topics_and_services_it_uses(
    exported_head: dict[str, str],
    local_model: str,
    ros_env: dict[str, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Security off: the ROS graph shows what each node publishes, subscribes and serves."""
    policy = ET.parse(POLICY).getroot()
    assert policy.tag == "policy" and policy.get("version") == "0.2.0"
    assert {e.get("path") for e in policy.iterfind("enclaves/enclave")} == set(NODES)
    overrides = node_overrides(exported_head, local_model)
    with ExitStack() as stack:
        camera = stack.enter_context(running_camera(ros_env, monkeypatch))
        for enclave, (node_name, executable, params_file) in NODES.items():
            log = tmp_path / f"{node_name}.log"
            stack.enter_context(node_process(executable, params_file, overrides[enclave], ros_env, log))
        for enclave, (node_name, _, _) in NODES.items():
            granted_pub, granted_sub = enclave_grants(policy, enclave)
            optional = GRANTED_FOR_OPTIONS | GRANTED_FOR_NODE_OPTIONS.get(enclave, set())
            required = (granted_pub - optional, granted_sub - optional)

            def uses_required(node_name: str = node_name, required: tuple = required) -> bool:
                used_pub, used_sub = dds_topics(camera.node, node_name)
                return used_pub >= required[0] and used_sub >= required[1]

            camera.spin_until(uses_required, f"{node_name} to use all that the policy grants it")
            camera.spin_for(1.0)  # anything created after those shows up now
            used_pub, used_sub = dds_topics(camera.node, node_name)
            assert used_pub <= granted_pub, f"{node_name} also publishes {used_pub - granted_pub}"
            assert used_sub <= granted_sub, f"{node_name} also subscribes {used_sub - granted_sub}"


def run_openssl(*args: str | Path) -> str:
    result = subprocess.run(["openssl", *map(str, args)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.fixture
def keystore(ros_env: dict[str, str], tmp_path: Path) -> Path:
    """A keystore for the test's domain: the shipped policy's enclaves and the test's own."""
    if shutil.which("openssl") is None:
        pytest.skip("the openssl CLI is not installed (apt-get install openssl)")
    keystore = tmp_path / "keystore"
    domain_id = int(ros_env["ROS_DOMAIN_ID"])
    create_keystore(keystore, domain_id)
    test_policy = tmp_path / "test_policy.xml"
    test_policy.write_text(TEST_POLICY)
    for policy, enclaves in ((POLICY, NODES), (test_policy, ("/sc2_split/test", "/sc2_split/intruder"))):
        for enclave in enclaves:
            create_enclave(keystore, enclave, permissions_from_policy(policy, enclave, domain_id))
    return keystore


def test_keystore_has_sros2_layout_and_its_certificates_and_documents_verify(
    keystore: Path, ros_env: dict[str, str]
) -> None:
    domain_id = int(ros_env["ROS_DOMAIN_ID"])
    folder = keystore / "enclaves" / "sc2_split" / "head"
    for name in ("cert.pem", "key.pem", "governance.p7s", "permissions.p7s", "identity_ca.cert.pem",
                 "permissions_ca.cert.pem"):  # fmt: skip
        assert (folder / name).is_file(), name
    for name in ("ca.cert.pem", "identity_ca.cert.pem", "permissions_ca.cert.pem"):
        assert (keystore / "public" / name).is_file(), name
    for name in ("ca.key.pem", "identity_ca.key.pem", "permissions_ca.key.pem"):
        assert (keystore / "private" / name).is_file(), name

    ca = keystore / "public" / "identity_ca.cert.pem"
    assert run_openssl("verify", "-CAfile", ca, folder / "cert.pem").strip().endswith(": OK")
    subject = run_openssl("x509", "-in", folder / "cert.pem", "-noout", "-subject", "-nameopt", "RFC2253")
    assert subject.strip() == "subject=CN=/sc2_split/head"
    assert "ASN1 OID: prime256v1" in run_openssl("x509", "-in", ca, "-noout", "-text")
    assert "ASN1 OID: prime256v1" in run_openssl("pkey", "-in", folder / "key.pem", "-noout", "-text")

    permissions_ca = keystore / "public" / "permissions_ca.cert.pem"
    signed = {
        folder / "governance.p7s": keystore / "enclaves" / "governance.xml",
        folder / "permissions.p7s": folder / "permissions.xml",
    }
    for p7s, document in signed.items():
        content = run_openssl("smime", "-verify", "-text", "-in", p7s, "-CAfile", permissions_ca)
        assert content.replace("\r\n", "\n") == document.read_text()

    governance = ET.parse(keystore / "enclaves" / "governance.xml").getroot()
    rule = governance.find("domain_access_rules/domain_rule")
    assert rule is not None and rule.findtext("allow_unauthenticated_participants") == "false"
    (grant,) = ET.parse(folder / "permissions.xml").getroot().iterfind("permissions/grant")
    assert grant.findtext("subject_name") == "CN=/sc2_split/head" and grant.findtext("default") == "DENY"
    allow = list(grant.iterfind("allow_rule"))
    assert rule.findtext("domains/id") == allow[0].findtext("domains/id") == str(domain_id)
    topics = [
        sorted(t.text or "" for t in allow[0].iterfind(f"{kind}/topics/topic"))
        for kind in ("publish", "subscribe")
    ]
    assert [t for t in topics[0] if t.startswith("rt/")] == [
        "rt/bottleneck", "rt/diagnostics", "rt/parameter_events", "rt/rosout"
    ]  # fmt: skip
    assert [t for t in topics[1] if t.startswith("rt/")] == [
        "rt/clock",
        "rt/image",
        "rt/image/compressed",
        "rt/stats",
    ]
    assert "rr/head/get_parametersReply" in topics[0] and "rq/head/get_parametersRequest" in topics[1]
    assert [t.text for t in allow[1].iter("topic")] == ["ros_discovery_info", "ros_discovery_info"]


def secure(env: dict[str, str], keystore: Path) -> dict[str, str]:
    """`env` with DDS Security on and enforced (a node without its enclave's files does not start)."""
    return {
        **env,
        "ROS_SECURITY_KEYSTORE": str(keystore),
        "ROS_SECURITY_ENABLE": "true",
        "ROS_SECURITY_STRATEGY": "Enforce",
    }


def require_dds_security(env: dict[str, str]) -> None:
    """Starts a node in the test's enclave; skips where Fast DDS was built without its security plugins."""
    probe = "import rclpy; rclpy.init(); rclpy.create_node('test_camera'); rclpy.shutdown()"
    result = subprocess.run(
        [sys.executable, "-c", probe, "--ros-args", "--enclave", "/sc2_split/test"],
        env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    if result.returncode != 0 and FAST_DDS_WITHOUT_SECURITY in result.stderr:
        error = result.stderr[result.stderr.index("RCLError") :].split(", at ")[0].replace("\n", " ")
        pytest.skip(
            "Fast DDS here has no DDS Security plugins: a node with ROS_SECURITY_ENABLE=true, "
            f"ROS_SECURITY_STRATEGY=Enforce and enclave /sc2_split/test failed with {error!r}"
        )
    assert result.returncode == 0, f"a secure node failed to start:\n{result.stderr}"


def test_with_security_enforced_detections_flow_and_others_cannot_inject_bottlenecks(
    request: pytest.FixtureRequest,
    ros_env: dict[str, str],
    keystore: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    env = secure(ros_env, keystore)
    require_dds_security(env)
    for name in ("ROS_SECURITY_KEYSTORE", "ROS_SECURITY_ENABLE", "ROS_SECURITY_STRATEGY"):
        monkeypatch.setenv(name, env[name])
    overrides = node_overrides(request.getfixturevalue("exported_head"))  # exported once security works
    intruders = {  # who: (environment, arguments after the script's own)
        "a process without the keystore": ({**ros_env, "ROS_SECURITY_ENABLE": "false"}, []),
        "an enclave that may not publish bottleneck": (
            env,
            ["--ros-args", "--enclave", "/sc2_split/intruder"],
        ),
    }
    with ExitStack() as stack:
        camera = stack.enter_context(running_camera(ros_env, monkeypatch, "/sc2_split/test"))
        logs = {}
        for enclave in ("/sc2_split/head", "/sc2_split/tail"):
            node_name, executable, params_file = NODES[enclave]
            logs[node_name] = tmp_path / f"{node_name}.log"
            ros_args = ["--enclave", enclave]
            stack.enter_context(
                node_process(executable, params_file, overrides[enclave], env, logs[node_name], ros_args)
            )
        camera.sending = True
        camera.spin_until(lambda: len(camera.detections) >= 2, "detections with security enforced")
        camera.sending = False
        camera.spin_until(lambda: "/tail" in camera.diagnostics.counters, "the tail's counters")

        outcomes = {}
        for who, (intruder_env, args) in intruders.items():
            result = subprocess.run(
                [sys.executable, "-c", INTRUDER, str(INTRUDER_S), FOREIGN_MODEL_ID, *args],
                env=intruder_env, capture_output=True, text=True, timeout=90,
            )  # fmt: skip
            assert result.returncode == 0, f"{who} did not even try:\n{result.stderr}"
            outcomes[who] = result.stdout.strip()
        camera.spin_for(2.0)  # several counter periods: a rejection would be counted by now
        assert outcomes["a process without the keystore"] == "matched 0", outcomes
        assert outcomes["an enclave that may not publish bottleneck"].startswith(
            ("publisher refused", "matched 0")
        ), outcomes
        counted = {k: camera.counter("/tail", k) for k in ("rejected", "failed")}
        assert counted == {"rejected": 0, "failed": 0}, (outcomes, counted)

        # The control: a bottleneck writer that the policy allows reaches the tail, which counts it.
        camera.node.destroy_subscription(camera.bottleneck_sub)  # only the tail's reader matches now
        pub = camera.node.create_publisher(Bottleneck, "bottleneck", BOTTLENECK_QOS)
        camera.spin_until(lambda: pub.get_subscription_count() >= 1, "the tail to match the test's writer")
        pub.publish(Bottleneck(model_id=FOREIGN_MODEL_ID))
        camera.spin_until(lambda: camera.counter("/tail", "rejected") == 1, "the tail to count the control")
    tail_log = logs["tail"].read_text()
    assert tail_log.count("rejected a bottleneck") == 1, tail_log
