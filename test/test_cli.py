"""The ``bisenet`` CLI: common options spelled the same in every command, and the backend and
precision lists taken from the registry (never a copy that can fall behind)."""

import argparse

import pytest

from bisenet_ros import cli
from bisenet_ros.inference.backends import BACKENDS, PRECISION_CHOICES

#: option -> spellings another command might use for the same thing (none may exist).
OTHER_SPELLINGS = {
    '--model': ('--model-path', '--checkpoint', '--weights'),
    '--threads': ('--num-threads', '--nthreads', '-j'),
    '--input-size': ('--size', '--input-shape', '--resolution'),
    '--label-set': ('--labels-set', '--labelset', '--label_set'),
    '--backend': ('--runtime',),
    '--device': ('--devices',),
}


def _subparser(name: str) -> argparse.ArgumentParser:
    parser = cli.build_parser(name)
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices[name]


def _options(name: str):
    """option string -> argparse action of command ``name``."""
    return {s: a for a in _subparser(name)._actions for s in a.option_strings}


@pytest.mark.parametrize('command', sorted(cli.SUBCOMMANDS))
def test_common_options_have_one_spelling(command):
    options = _options(command)
    for canonical, others in OTHER_SPELLINGS.items():
        for other in others:
            assert other not in options, f'bisenet {command}: {other} (use {canonical})'
    outputs = {a for s, a in options.items() if 'output' in s and a.dest != 'outputs'}
    if outputs:  # every command writing a file or folder takes -o/--output for it
        assert '-o' in options and '--output' in options, f'bisenet {command}: {sorted(options)}'
        assert options['-o'] is options['--output'], command


@pytest.mark.parametrize('command', sorted(cli.SUBCOMMANDS))
def test_backend_and_precision_choices_come_from_the_registry(command):
    options = _options(command)
    backend = options.get('--backend')
    if backend is not None and backend.choices is not None:
        assert tuple(backend.choices) == tuple(BACKENDS), command
    if backend is not None and backend.help:
        listed = [b for b in BACKENDS if b in backend.help]
        assert not listed or listed == list(BACKENDS), (command, backend.help)
    precision = options.get('--precision')
    if precision is not None and precision.choices is not None and command != 'export':
        assert tuple(precision.choices) == tuple(PRECISION_CHOICES), command


def test_demo_backend_help_lists_every_backend():
    backend = _options('demo')['--backend']
    assert tuple(backend.choices) == tuple(BACKENDS)
    for name in BACKENDS:
        assert name in backend.help, backend.help
