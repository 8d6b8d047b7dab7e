from .slot_intent import SlotIntent, make_slot_intent

__all__ = ["SlotIntent", "make_slot_intent"]
