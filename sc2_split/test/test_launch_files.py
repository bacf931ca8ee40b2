"""The launch files and parameter files agree with the package: every executable they start is
installed, every file they name is shipped, and every parameter set in config/ is one its node
declares, with the type it declares. Checked from the files' syntax, so launch_ros need not be here."""

import ast
import importlib
import importlib.util
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml
from rclpy.qos import ReliabilityPolicy
from sc2_split.ros.dds_profile import PROFILE_FILE, PROFILE_VARIABLES, camera_profile_env, shipped_profile
from sc2_split.ros.topics import OVERLAY_QOS

PACKAGE = Path(__file__).resolve().parents[1]
LAUNCH_FILES = sorted((PACKAGE / "launch").glob("*.launch.py"))
# Parameter files; rate_ladder.yaml is the head's rate ladder, not one (test_bundled_ladder.py).
CONFIG_FILES = sorted(p for p in (PACKAGE / "config").glob("*.yaml") if p.name != "rate_ladder.yaml")
FULL_HD_RGB8 = 1920 * 1080 * 3
FASTDDS = "{http://www.eprosima.com/XMLSchemas/fastRTPS_Profiles}"


def console_scripts() -> dict[str, str]:
    """setup.py's console_scripts: executable name -> "module:function"."""
    tree = ast.parse((PACKAGE / "setup.py").read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Dict):
            for key, value in zip(node.keys, node.values, strict=True):
                if isinstance(key, ast.Constant) and key.value == "console_scripts":
                    entries = [ast.literal_eval(e) for e in value.elts]
                    return dict(tuple(part.strip() for part in e.split("=")) for e in entries)
    raise AssertionError("setup.py has no console_scripts")


def launched_nodes(path: Path) -> list[dict[str, str]]:
    """The constant keyword arguments (package, executable, name) of each Node(...) in a launch file."""
    nodes = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "Node":
            nodes.append({k.arg: k.value.value for k in node.keywords if isinstance(k.value, ast.Constant)})
    return nodes


def named_files(path: Path, suffix: str) -> set[str]:
    """String constants in a launch file that name a file by `suffix`."""
    tree = ast.parse(path.read_text())
    return {n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and str(n.value).endswith(suffix)}


def all_launched_nodes() -> dict[str, dict[str, str]]:
    """Node name -> its Node(...) arguments, over all launch files."""
    return {node["name"]: node for path in LAUNCH_FILES for node in launched_nodes(path)}


def declared_parameters(executable: str) -> dict:
    """The PARAMETERS table of the node module behind an installed executable."""
    module_name = console_scripts()[executable].split(":")[0]
    return importlib.import_module(module_name).PARAMETERS


def test_there_are_head_tail_split_and_fallback_launch_files() -> None:
    names = ["fallback.launch.py", "head.launch.py", "split.launch.py", "tail.launch.py"]
    assert [p.name for p in LAUNCH_FILES] == names
    assert set(all_launched_nodes()) == {"head", "tail", "overlay", "fallback"}


@pytest.mark.parametrize("path", LAUNCH_FILES, ids=lambda p: p.name)
def test_launch_files_start_installed_executables_with_shipped_files(path: Path) -> None:
    scripts = console_scripts()
    for node in launched_nodes(path):
        assert node["package"] == "sc2_split"
        assert node["executable"] in scripts, f"{path.name}: {node['executable']} is not in console_scripts"
    for name in named_files(path, ".yaml"):
        assert (PACKAGE / "config" / name).is_file(), f"{path.name} names config/{name}, which does not exist"
    for name in named_files(path, ".launch.py"):
        assert (PACKAGE / "launch" / name).is_file(), (
            f"{path.name} includes launch/{name}, which does not exist"
        )


def test_every_launched_node_gets_a_section_of_a_params_file_its_launch_file_names() -> None:
    for path in LAUNCH_FILES:
        sections = {
            key.rsplit("/", 1)[-1]
            for name in named_files(path, ".yaml")
            for key in yaml.safe_load((PACKAGE / "config" / name).read_text())
        }
        for node in launched_nodes(path):
            assert node["name"] in sections, f"{path.name}: no parameters for node {node['name']}"


@pytest.mark.parametrize("path", CONFIG_FILES, ids=lambda p: p.name)
def test_params_files_set_exactly_the_declared_parameters_with_their_types(path: Path) -> None:
    nodes = all_launched_nodes()
    for key, section in yaml.safe_load(path.read_text()).items():
        assert key.startswith("/**/"), f"{path.name}: {key} should match the node in any namespace"
        node_name = key.removeprefix("/**/")
        assert node_name in nodes, f"{path.name}: no launch file starts a node named {node_name}"
        declared = declared_parameters(nodes[node_name]["executable"])
        values = section["ros__parameters"]
        assert set(values) == set(declared), (
            f"{path.name}: {key} sets {sorted(values)}, declared {sorted(declared)}"
        )
        for name, value in values.items():
            # rclpy refuses e.g. an integer for a parameter declared as a double.
            assert type(value) is type(declared[name].default), f"{path.name}: {name}: {value!r}"
            assert not declared[name].choices or value in declared[name].choices, f"{path.name}: {name}"


def test_rviz_config_shows_the_overlay_with_matching_qos() -> None:
    rviz = yaml.safe_load((PACKAGE / "config" / "split.rviz").read_text())
    (display,) = [
        d for d in rviz["Visualization Manager"]["Displays"] if d["Class"] == "rviz_default_plugins/Image"
    ]
    assert display["Topic"]["Value"] == "/overlay"
    reliability = {"Best Effort": ReliabilityPolicy.BEST_EFFORT, "Reliable": ReliabilityPolicy.RELIABLE}
    assert reliability[display["Topic"]["Reliability Policy"]] == OVERLAY_QOS.reliability


@pytest.mark.parametrize("path", LAUNCH_FILES, ids=lambda p: p.name)
def test_launch_files_load_where_launch_ros_is_installed(path: Path) -> None:
    pytest.importorskip("launch_ros")
    from launch import LaunchDescription

    spec = importlib.util.spec_from_file_location(path.stem.replace(".", "_"), path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert isinstance(module.generate_launch_description(), LaunchDescription)


@pytest.mark.parametrize("path", [p for p in LAUNCH_FILES if launched_nodes(p)], ids=lambda p: p.name)
def test_launch_files_that_start_nodes_set_the_camera_frames_profile(path: Path) -> None:
    tree = ast.parse(path.read_text())
    calls = {getattr(n.func, "id", None) for n in ast.walk(tree) if isinstance(n, ast.Call)}
    assert {"SetEnvironmentVariable", "camera_profile_env"} <= calls, path.name


def test_the_profile_is_set_under_the_name_the_distributions_fast_dds_reads() -> None:
    profile = str(shipped_profile())
    assert Path(profile).is_file() and Path(profile).name == PROFILE_FILE
    assert camera_profile_env({}, "humble") == {"FASTRTPS_DEFAULT_PROFILES_FILE": profile}
    assert camera_profile_env({"ROS_DISTRO": "jazzy"}) == {"FASTRTPS_DEFAULT_PROFILES_FILE": profile}
    assert camera_profile_env({"ROS_DISTRO": "kilted"}) == {"FASTDDS_DEFAULT_PROFILES_FILE": profile}
    # The registry's wheels set no ROS_DISTRO; they are Kilted's.
    assert camera_profile_env({}) == {"FASTDDS_DEFAULT_PROFILES_FILE": profile}
    for name in PROFILE_VARIABLES:
        assert camera_profile_env({name: "/etc/mine.xml", "ROS_DISTRO": "jazzy"}) == {}


@pytest.mark.parametrize(("leg", "variable"), [("", "FASTDDS"), ("jazzy", "FASTRTPS")])
def test_env_sh_sets_the_profile_unless_the_user_did(leg: str, variable: str) -> None:
    repo = PACKAGE.parent
    suffix = f"-{leg}" if leg else ""
    if not (repo / f"install{suffix}" / "setup.bash").is_file():
        pytest.fail(f"run tools/setup.sh {leg}")
    show = f"source tools/env.sh {leg} && echo $FASTRTPS_DEFAULT_PROFILES_FILE,$FASTDDS_DEFAULT_PROFILES_FILE"

    def profiles(**env: str) -> str:
        shell = {"PATH": "/usr/bin:/bin", "HOME": "/root", **env}
        return subprocess.run(["bash", "-c", show], cwd=repo, env=shell, capture_output=True, text=True,
                              check=True).stdout.strip()  # fmt: skip

    shipped = str(repo / f"install{suffix}" / "sc2_split" / "share" / "sc2_split" / "config" / PROFILE_FILE)
    assert profiles() == (f"{shipped}," if variable == "FASTRTPS" else f",{shipped}")
    assert profiles(FASTRTPS_DEFAULT_PROFILES_FILE="/etc/mine.xml") == "/etc/mine.xml,"


def test_the_fast_dds_profile_holds_several_full_hd_frames_in_shared_memory() -> None:
    root = ET.parse(PACKAGE / "config" / PROFILE_FILE).getroot()
    transports = {
        t.findtext(f"{FASTDDS}transport_id"): t for t in root.iter(f"{FASTDDS}transport_descriptor")
    }
    (participant,) = root.iter(f"{FASTDDS}participant")
    assert participant.get("is_default_profile") == "true"
    rtps = participant.find(f"{FASTDDS}rtps")
    used = [t.text for t in rtps.iter(f"{FASTDDS}transport_id")]
    assert sorted(used) == sorted(transports) and rtps.findtext(f"{FASTDDS}useBuiltinTransports") == "false"
    kinds = {transports[t].findtext(f"{FASTDDS}type"): transports[t] for t in used}
    assert set(kinds) == {"SHM", "UDPv4"}
    assert int(kinds["SHM"].findtext(f"{FASTDDS}segment_size")) >= 4 * FULL_HD_RGB8


def test_the_cyclone_dds_profile_asks_for_a_buffer_of_several_full_hd_frames() -> None:
    root = ET.parse(PACKAGE / "config" / "cyclonedds_camera_frames.xml").getroot()
    (buffer,) = root.iter("{https://cdds.io/config}SocketReceiveBufferSize")
    assert buffer.get("min").endswith("MB") and int(buffer.get("min")[:-2]) * 10**6 >= 4 * FULL_HD_RGB8
