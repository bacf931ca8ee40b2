"""A DDS-Security keystore in sros2's layout, made with the openssl CLI, for tests on machines without
sros2 (`ros2 security`), such as the ROS wheels. People make theirs with sros2: docs/sros2.md.

What sros2 makes and this module copies: one prime256v1 CA that is both identity CA and permissions CA,
a governance document (authenticate and encrypt everything, no unauthenticated participants) and,
per enclave, a key and a certificate whose subject is `CN=<enclave path>` and a permissions document
translated from an sros2 policy file, the documents signed as S/MIME. The layout:

    keystore/public/{ca,identity_ca,permissions_ca}.cert.pem
    keystore/private/{ca,identity_ca,permissions_ca}.key.pem
    keystore/enclaves/governance.{xml,p7s}
    keystore/enclaves/<enclave path>/{cert,key,identity_ca.cert,permissions_ca.cert}.pem
    keystore/enclaves/<enclave path>/{governance,permissions}.p7s and permissions.xml
"""

import datetime
import os
import secrets
import subprocess
import tempfile
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ENCLAVES, PUBLIC, PRIVATE = "enclaves", "public", "private"
CA_NAME = "sros2CA"
VALIDITY_DAYS = 3650

# basicConstraints as sros2 writes them: a CA that signs enclave certificates directly, and leaves.
OPENSSL_CONFIG = """\
[req]
distinguished_name = subject
prompt = no
[subject]
CN = {common_name}
[ca]
basicConstraints = critical, CA:TRUE, pathlen:1
[enclave]
basicConstraints = CA:FALSE
"""

GOVERNANCE = """\
<?xml version="1.0" encoding="UTF-8"?>
<dds xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"
    xsi:noNamespaceSchemaLocation="http://www.omg.org/spec/DDS-SECURITY/20170901/omg_shared_ca_governance.xsd">
  <domain_access_rules>
    <domain_rule>
      <domains><id>{domain_id}</id></domains>
      <allow_unauthenticated_participants>false</allow_unauthenticated_participants>
      <enable_join_access_control>true</enable_join_access_control>
      <discovery_protection_kind>ENCRYPT</discovery_protection_kind>
      <liveliness_protection_kind>ENCRYPT</liveliness_protection_kind>
      <rtps_protection_kind>ENCRYPT</rtps_protection_kind>
      <topic_access_rules>
        <topic_rule>
          <topic_expression>*</topic_expression>
          <enable_discovery_protection>true</enable_discovery_protection>
          <enable_liveliness_protection>true</enable_liveliness_protection>
          <enable_read_access_control>true</enable_read_access_control>
          <enable_write_access_control>true</enable_write_access_control>
          <metadata_protection_kind>ENCRYPT</metadata_protection_kind>
          <data_protection_kind>ENCRYPT</data_protection_kind>
        </topic_rule>
      </topic_access_rules>
    </domain_rule>
  </domain_access_rules>
</dds>
"""


def _openssl(*args: str | int | Path) -> str:
    result = subprocess.run(["openssl", *map(str, args)], capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"openssl {' '.join(map(str, args))} failed:\n{result.stderr}")
    return result.stdout


@contextmanager
def _config(common_name: str) -> Iterator[str]:
    """OPENSSL_CONFIG for `common_name` as a file, in place of the system's openssl.cnf."""
    with tempfile.NamedTemporaryFile("w", suffix=".cnf") as file:
        file.write(OPENSSL_CONFIG.format(common_name=common_name))
        file.flush()
        yield file.name


def _new_key(path: Path) -> None:
    """A prime256v1 key in PKCS#8 PEM, as sros2 writes it (DDS Security 9.3.1 names this curve)."""
    _openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-out", path)


def _smime_sign(keystore: Path, document: Path, signed: Path) -> None:
    """Clear-signed S/MIME with text/plain headers, the form DDS Security reads (sros2's PKCS7 flags)."""
    _openssl(
        "smime", "-sign", "-text", "-md", "sha256",
        "-in", document, "-out", signed,
        "-signer", keystore / PUBLIC / "permissions_ca.cert.pem",
        "-inkey", keystore / PRIVATE / "permissions_ca.key.pem",
    )  # fmt: skip


def _link(target: str, link: Path) -> None:
    if link.is_symlink() or link.exists():
        link.unlink()
    link.symlink_to(target)


def enclave_dir(keystore: Path, enclave: str) -> Path:
    return keystore / ENCLAVES / enclave.strip("/")


def create_keystore(keystore: Path, domain_id: int) -> None:
    """`ros2 security create_keystore`: the CA (identity CA = permissions CA) and signed governance."""
    for sub in (PUBLIC, PRIVATE, ENCLAVES):
        (keystore / sub).mkdir(parents=True, exist_ok=True)
    ca_key, ca_cert = keystore / PRIVATE / "ca.key.pem", keystore / PUBLIC / "ca.cert.pem"
    _new_key(ca_key)
    with _config(CA_NAME) as config:
        _openssl(
            "req", "-x509", "-new", "-sha256", "-key", ca_key, "-days", VALIDITY_DAYS, "-config", config,
            "-extensions", "ca", "-set_serial", secrets.randbits(63), "-out", ca_cert,
        )  # fmt: skip
    for role in ("identity_ca", "permissions_ca"):
        _link("ca.cert.pem", keystore / PUBLIC / f"{role}.cert.pem")
        _link("ca.key.pem", keystore / PRIVATE / f"{role}.key.pem")
    governance = keystore / ENCLAVES / "governance.xml"
    governance.write_text(GOVERNANCE.format(domain_id=domain_id))
    _smime_sign(keystore, governance, keystore / ENCLAVES / "governance.p7s")


def create_enclave(keystore: Path, enclave: str, permissions_xml: str) -> Path:
    """`ros2 security create_enclave` then `create_permission`: a key, a certificate with subject
    `CN=<enclave>` signed by the CA, the CA certificates and governance linked in, and the given
    permissions document signed. Returns the enclave's folder."""
    folder = enclave_dir(keystore, enclave)
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("identity_ca.cert.pem", "permissions_ca.cert.pem"):
        _link(os.path.relpath(keystore / PUBLIC / name, folder), folder / name)
    _link(os.path.relpath(keystore / ENCLAVES / "governance.p7s", folder), folder / "governance.p7s")
    _new_key(folder / "key.pem")
    request = folder / "cert.csr"
    with _config(enclave) as config:
        _openssl("req", "-new", "-sha256", "-key", folder / "key.pem", "-config", config, "-out", request)
        _openssl(
            "x509", "-req", "-sha256", "-in", request, "-days", VALIDITY_DAYS,
            "-CA", keystore / PUBLIC / "identity_ca.cert.pem",
            "-CAkey", keystore / PRIVATE / "identity_ca.key.pem",
            "-set_serial", secrets.randbits(63), "-extfile", config, "-extensions", "enclave",
            "-out", folder / "cert.pem",
        )  # fmt: skip
    request.unlink()
    (folder / "permissions.xml").write_text(permissions_xml)
    _smime_sign(keystore, folder / "permissions.xml", folder / "permissions.p7s")
    return folder


def _fully_qualified(name: str, ns: str, node: str) -> str:
    """A policy's topic or service name resolved the way ROS resolves it in a node `node` in `ns`."""
    ns = ns if ns.endswith("/") else ns + "/"
    if name.startswith("/"):
        return name
    if name.startswith("~"):
        return ns + node + name[1:]
    return ns + name


def _dds_topics(rules: ET.Element, ns: str, node: str, qualifier: str) -> tuple[set[str], set[str]]:
    """(published, subscribed) DDS topic names of one <topics> or <services> element, ROS's mangling:
    rt/ for topics, rq/...Request and rr/...Reply for services."""
    names = [_fully_qualified((e.text or "").strip(), ns, node) for e in rules]
    publish: set[str] = set()
    subscribe: set[str] = set()
    if rules.tag == "topics":
        if rules.get("publish") == qualifier:
            publish |= {f"rt{n}" for n in names}
        if rules.get("subscribe") == qualifier:
            subscribe |= {f"rt{n}" for n in names}
    elif rules.tag == "services":
        if rules.get("reply") == qualifier:
            publish |= {f"rr{n}Reply" for n in names}
            subscribe |= {f"rq{n}Request" for n in names}
        if rules.get("request") == qualifier:
            publish |= {f"rq{n}Request" for n in names}
            subscribe |= {f"rr{n}Reply" for n in names}
    else:
        raise ValueError(f"<{rules.tag}> is not supported here (topics and services only)")
    return publish, subscribe


def enclave_grants(policy: ET.Element, enclave: str, qualifier: str = "ALLOW") -> tuple[set[str], set[str]]:
    """The DDS topics an sros2 policy lets (or, with DENY, forbids) `enclave` publish and subscribe."""
    matches = [e for e in policy.iterfind("enclaves/enclave") if e.get("path") == enclave]
    if not matches:
        raise KeyError(f"the policy has no enclave {enclave}")
    publish: set[str] = set()
    subscribe: set[str] = set()
    for profile in matches[0].iterfind("profiles/profile"):
        for rules in profile:
            pub, sub = _dds_topics(rules, profile.get("ns", "/"), profile.get("node", ""), qualifier)
            publish |= pub
            subscribe |= sub
    return publish, subscribe


def _rule(parent: ET.Element, tag: str, domain_id: int, publish: set[str], subscribe: set[str]) -> None:
    rule = ET.SubElement(parent, tag)
    ET.SubElement(ET.SubElement(rule, "domains"), "id").text = str(domain_id)
    for kind, names in (("publish", publish), ("subscribe", subscribe)):
        if names:
            topics = ET.SubElement(ET.SubElement(rule, kind), "topics")
            for name in sorted(names):
                ET.SubElement(topics, "topic").text = name


def permissions_from_policy(policy_file: Path, enclave: str, domain_id: int) -> str:
    """`ros2 security create_permission`'s translation of one enclave of an sros2 policy into a DDS
    permissions document: its DENY rules, its ALLOW rules, ros_discovery_info (which rmw_fastrtps and
    rmw_cyclonedds use for the ROS graph), and DENY for everything else. Topics and services only."""
    policy = ET.parse(policy_file).getroot()
    now = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0, tzinfo=None)
    dds = ET.Element(
        "dds",
        {
            "xmlns:xsi": "http://www.w3.org/2001/XMLSchema-instance",
            "xsi:noNamespaceSchemaLocation": (
                "http://www.omg.org/spec/DDS-SECURITY/20170901/omg_shared_ca_permissions.xsd"
            ),
        },
    )
    grant = ET.SubElement(ET.SubElement(dds, "permissions"), "grant", name=enclave)
    ET.SubElement(grant, "subject_name").text = f"CN={enclave}"
    validity = ET.SubElement(grant, "validity")
    ET.SubElement(validity, "not_before").text = (now - datetime.timedelta(days=1)).isoformat()
    ET.SubElement(validity, "not_after").text = (now + datetime.timedelta(days=VALIDITY_DAYS)).isoformat()
    denied = enclave_grants(policy, enclave, "DENY")
    if any(denied):
        _rule(grant, "deny_rule", domain_id, *denied)
    _rule(grant, "allow_rule", domain_id, *enclave_grants(policy, enclave, "ALLOW"))
    _rule(grant, "allow_rule", domain_id, {"ros_discovery_info"}, {"ros_discovery_info"})
    ET.SubElement(grant, "default").text = "DENY"
    ET.indent(dds)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(dds, encoding="unicode") + "\n"
