"""Interrupts held back by `deferred` sections: raised once, at the end, never lost."""

from __future__ import annotations

import pytest

from bubblechain.interrupts import deferred, interrupt


def test_an_interrupt_inside_a_section_is_raised_when_it_ends():
    done = []
    with pytest.raises(KeyboardInterrupt), deferred():
        with deferred():
            interrupt(KeyboardInterrupt())  # as the handler does, mid-section
            done.append("inner")
        done.append("outer")  # the outer section still completes
    assert done == ["inner", "outer"]
    with deferred():  # and it is not raised a second time later
        pass


def test_an_interrupt_is_not_lost_when_its_section_fails():
    """It used to stay pending and come out of some later, unrelated section."""
    with pytest.raises(KeyboardInterrupt) as caught, deferred():
        interrupt(KeyboardInterrupt())
        raise ValueError("the section's own failure")
    assert isinstance(caught.value.__cause__, ValueError)
    with deferred():
        pass


def test_outside_any_section_it_is_raised_at_once():
    with pytest.raises(KeyboardInterrupt):
        interrupt(KeyboardInterrupt())
