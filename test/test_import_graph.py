"""The package's import graph (read from the source with ``ast``).

No circle through the model packages, the conversions or the ROS layer; ``export/`` (makes
artifacts) never imports ``inference/`` (runs them); no backend imports another backend; and the
rooms of the ROS layer: only ``ros/`` imports rclpy, only ``ros/`` and the command-line tools
import ``ros/``, the node's files and its clients (``ros/clients/``) never import each other, and
nothing in the package imports the test tooling (``test/ros_harness.py``).
"""

import ast
from functools import lru_cache
from pathlib import Path
from typing import Dict, Set

import bisenet_ros

ROOT = Path(bisenet_ros.__file__).resolve().parent
BACKENDS_DIR = ROOT / 'inference' / 'backends'


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix('').parts
    return '.'.join(parts[:-1] if parts[-1] == '__init__' else parts)


def _imports(path: Path) -> Set[str]:
    """Every bisenet_ros module ``path`` imports, at any depth (function bodies included)."""
    name = _module_name(path)
    package = name if path.name == '__init__.py' else name.rsplit('.', 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith('bisenet_ros'))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split('.')
                base = base[:len(base) - node.level + 1]
                target = '.'.join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ''
            if target.startswith('bisenet_ros'):
                found.add(target)
                found.update(f'{target}.{a.name}' for a in node.names)
    return {m for m in found if m in _known_modules() and m != name}


@lru_cache(maxsize=None)
def _known_modules() -> Set[str]:
    return {_module_name(p) for p in ROOT.rglob('*.py')}


def _top_level_imports(path: Path) -> Set[str]:
    """First component of every absolute import in ``path`` (``rclpy``, ``numpy``, ...)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(a.name.split('.')[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            found.add(node.module.split('.')[0])
    return found


@lru_cache(maxsize=None)
def _graph() -> Dict[str, Set[str]]:
    """Module -> the bisenet_ros modules it imports (read once per session; do not mutate)."""
    return {_module_name(p): _imports(p) for p in ROOT.rglob('*.py')}


def _package(module: str) -> str:
    parts = module.split('.')
    return '.'.join(parts[:2])


def _package_edges() -> Dict[str, Set[str]]:
    edges: Dict[str, Set[str]] = {}
    for module, targets in _graph().items():
        for target in targets:
            a, b = _package(module), _package(target)
            if a != b:
                edges.setdefault(a, set()).add(b)
    return edges


def _reachable(edges: Dict[str, Set[str]], start: str) -> Set[str]:
    seen: Set[str] = set()
    todo = list(edges.get(start, ()))
    while todo:
        node = todo.pop()
        if node not in seen:
            seen.add(node)
            todo.extend(edges.get(node, ()))
    return seen


def _circles(edges: Dict[str, Set[str]]) -> Set[str]:
    """Every node of ``edges`` that reaches itself (lies on a circle)."""
    return {node for node in edges if node in _reachable(edges, node)}


def test_no_module_imports_itself_through_others():
    """No circle of files (imports inside functions count: they are still a circle)."""
    graph = _graph()
    assert 'bisenet_ros.ros.camera_io' in graph['bisenet_ros.ros.node']  # the graph is real
    circles = _circles(graph)
    assert not circles, {m: sorted(n for n in _reachable(graph, m) if m in _reachable(graph, n))
                         for m in sorted(circles)}


def test_no_subpackage_imports_itself_through_others():
    """No circle of subpackages (``bisenet_ros.<name>``, top-level modules included)."""
    edges = _package_edges()
    assert 'bisenet_ros.export' in edges and 'bisenet_ros.inference' in edges  # graph is real
    circles = _circles(edges)
    assert not circles, {p: sorted(n for n in _reachable(edges, p) if p in _reachable(edges, n))
                         for p in sorted(circles)}


def test_export_never_imports_inference():
    bad = {m: sorted(t for t in ts if t.startswith('bisenet_ros.inference'))
           for m, ts in _graph().items() if m.startswith('bisenet_ros.export')}
    assert not any(bad.values()), bad


def test_no_backend_imports_another_backend():
    backends = {_module_name(p) for p in BACKENDS_DIR.glob('*_backend.py')}
    assert {'bisenet_ros.inference.backends.openvino_backend',
            'bisenet_ros.inference.backends.torch_backend'} <= backends
    graph = _graph()
    for module in backends:
        assert not graph[module] & (backends - {module}), (module, graph[module] & backends)
    registry = graph['bisenet_ros.inference.backends.registry']
    assert not registry & backends  # the registry imports them by name, when asked


def _in(module: str, *packages: str) -> bool:
    return any(module == f'bisenet_ros.{p}' or module.startswith(f'bisenet_ros.{p}.')
               for p in packages)


#: ROS client libraries and message packages: what the ROS layer, and only it, imports.
ROS_IMPORTS = {'rclpy', 'rcl_interfaces', 'builtin_interfaces', 'std_msgs', 'sensor_msgs',
               'diagnostic_msgs', 'vision_msgs', 'launch', 'launch_ros'}


def test_only_the_ros_layer_imports_rclpy():
    modules = {_module_name(p): _top_level_imports(p) for p in ROOT.rglob('*.py')}
    assert ROS_IMPORTS & modules['bisenet_ros.ros.process']  # the check is real
    outside = {m: sorted(found & ROS_IMPORTS) for m, found in modules.items()
               if not _in(m, 'ros')}
    assert not any(outside.values()), outside


def test_only_the_ros_layer_and_the_tools_import_it():
    """``bags/``, the conversions, ``evaluation/`` and the rest work without ``ros/``."""
    graph = _graph()
    assert 'bisenet_ros.image_conversions' in graph['bisenet_ros.bags.messages']
    assert any(_in(t, 'ros') for t in graph['bisenet_ros.tools.eval_bag'])  # the check is real
    bad = {m: sorted(t for t in ts if _in(t, 'ros')) for m, ts in graph.items()
           if not _in(m, 'ros', 'tools')}
    assert not any(bad.values()), bad


def test_the_node_and_its_clients_never_import_each_other():
    """``ros/clients/`` (replay, spin thread, node process) talks to the node over DDS or runs it
    as a child process; the node's files never import the clients and the clients never import
    the node's files, so either can change without the other."""
    graph = _graph()
    clients = {m for m in graph if _in(m, 'ros.clients')}
    node_files = {m for m in graph if _in(m, 'ros')} - clients
    assert {'bisenet_ros.ros.clients.replay', 'bisenet_ros.ros.clients.node_process'} <= clients
    assert 'bisenet_ros.ros.node' in node_files
    assert 'bisenet_ros.ros.clients.spin_thread' in graph['bisenet_ros.ros.clients.replay']
    assert 'bisenet_ros.ros.clients.replay' in graph['bisenet_ros.tools.eval_bag']
    node_to_clients = {m: sorted(graph[m] & clients) for m in node_files}
    assert not any(node_to_clients.values()), node_to_clients
    clients_to_node = {m: sorted(graph[m] & node_files) for m in clients}
    assert not any(clients_to_node.values()), clients_to_node


def test_nothing_in_the_package_imports_the_test_tooling():
    harness = ROOT.parent / 'test' / 'ros_harness.py'
    assert 'Probe' in harness.read_text()  # the tooling lives in test/, outside the package
    assert not (ROOT / 'ros' / 'node_harness.py').exists()
    bad = {_module_name(p): sorted(_top_level_imports(p) & {'ros_harness', 'conftest', 'test'})
           for p in ROOT.rglob('*.py')}
    assert not any(bad.values()), bad
