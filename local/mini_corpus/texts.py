"""Sentence generators of the synthetic corpora: templates filled with words drawn from slot lists.

A generator draws a template, then a value for *every* slot in the order the slots are
declared (whether the template uses it or not), so a generator seeded alike gives the same
sentence. A slot is a word list, :class:`Distinct` (a word of another slot's list other than
that slot's value) or a ``range`` of integers. A template field spelt with a capital
(``{Time}``) is the slot's value with its first letter capitalised.

- ``story`` (the mini corpus's original generator), ``travel`` and ``household`` are the
  training generators (:data:`TRAIN_GENERATORS`);
- ``nature`` is kept for ``test_unseen`` only: its templates and its words (but for the
  function words of :data:`FUNCTION_WORDS`) appear in no training generator.
"""

from __future__ import annotations

import re
import string
from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np


@dataclass(frozen=True)
class Distinct:
    """A slot drawn from the list of slot ``of``, never equal to that slot's value."""

    of: str


Slot = tuple[str, ...] | Distinct | range


@dataclass(frozen=True)
class SentenceGenerator:
    """Templates and the slots that fill them."""

    name: str
    templates: tuple[str, ...]
    slots: Mapping[str, Slot]

    def sentence(self, rng: np.random.Generator) -> str:
        """One sentence; draws the template, then every slot in declared order."""
        template = self.templates[rng.integers(len(self.templates))]
        values: dict[str, object] = {}
        for name, slot in self.slots.items():
            if isinstance(slot, range):
                values[name] = int(rng.integers(slot.start, slot.stop))
            else:
                if isinstance(slot, Distinct):
                    words = tuple(w for w in self._words(slot.of) if w != values[slot.of])
                else:
                    words = slot
                values[name] = words[rng.integers(len(words))]
        for name in template_fields(template):
            if name not in values and name[:1].isupper() and name.lower() in values:
                value = str(values[name.lower()])
                values[name] = value[0].upper() + value[1:]
        return template.format(**values)

    def _words(self, name: str) -> tuple[str, ...]:
        slot = self.slots[name]
        return self._words(slot.of) if isinstance(slot, Distinct) else slot  # type: ignore[return-value]

    def text(self, rng: np.random.Generator, sentences: int | None = None) -> str:
        """One or two sentences (two with probability 0.4 unless ``sentences`` is given)."""
        if sentences is None:
            sentences = 2 if rng.random() < 0.4 else 1
        return " ".join(self.sentence(rng) for _ in range(sentences))

    def vocabulary(self) -> set[str]:
        """Every word of the templates and word lists, lower case (numbers not included)."""
        words: set[str] = set()
        for template in self.templates:
            words.update(tokens(re.sub(r"\{\w+\}", " ", template)))
        for slot in self.slots.values():
            if isinstance(slot, tuple):
                for phrase in slot:
                    words.update(tokens(phrase))
        return words

    def frames(self) -> set[str]:
        """The templates with every field replaced by ``{}`` (what two generators must not share)."""
        return {re.sub(r"\{\w+\}", "{}", t) for t in self.templates}


def template_fields(template: str) -> list[str]:
    return [field for _, field, _, _ in string.Formatter().parse(template) if field]


def tokens(text: str) -> list[str]:
    """Lower-case words of ``text`` (``don't`` is one word)."""
    return re.findall(r"[a-z]+(?:'[a-z]+)?", text.lower())


# Words any English sentence needs; shared between the training and held-out generators.
FUNCTION_WORDS = frozenset(
    "a an the of in on at to for from by with and or but not no is are was were be been being has have had do "
    "does did it its they them their this that these those there here can could will would should may might "
    "than as into onto over under near behind beside among along across inside without through throughout "
    "toward after before during until since when where why how what which who whom whose very too so some "
    "many most more each every all any i me my we us our you your he him his she her".split())

STORY = SentenceGenerator(
    "story",
    templates=(
        "{name} {verb_past} the {adj} {noun} {place}.",
        "{Time}, {name} {verb_past} a {adj} {noun}.",
        "Please {verb} the {adj} {noun} {place}.",
        "Did {name} really {verb} the {noun} {time}?",
        "There were {num} {plural} {place}.",
        "My {relative} {verb_past} {num} {plural} {time}.",
        "{name} told {name2} that the {noun} was {adj} {time}.",
        "I think the {noun} {place} is too {adj} for {name}.",
        "How many {plural} did you {verb} {time}?",
        "{name} and {name2} {verb_past} the {noun} together {time}.",
        "Nobody knew why the {noun} {place} was so {adj}.",
        "After the {adj} storm, the {noun} looked {adj2}.",
        "Call me {time} if the {noun} is still {adj}.",
        "The {adj} {noun} costs {num} dollars {place}.",
        "We should {verb} the {noun} before {name} comes back.",
        "Is the {noun} {place} as {adj} as my {relative} said?",
    ),
    slots={
        "name": ("Anna", "Peter", "Maria", "James", "Laura", "Oliver", "Sophie", "Daniel", "Emma", "Thomas", "Lucy",
                 "Henry", "Grace", "Samuel", "Clara", "Martin", "Alice", "George", "Nora", "Victor", "Helen", "Oscar",
                 "Julia", "Frank", "Rachel", "Simon", "Diana", "Arthur"),
        "name2": Distinct("name"),
        "time": ("yesterday", "this morning", "last winter", "every Sunday", "after dinner", "before sunrise",
                 "on Monday", "later tonight", "in the afternoon", "twice a week", "last summer", "at noon"),
        "adj": ("old", "quiet", "bright", "heavy", "small", "yellow", "careful", "gentle", "strange", "narrow",
                "cold", "warm", "broken", "shiny", "empty", "famous", "tired", "busy", "green", "wooden",
                "silver", "sudden", "lonely", "clever", "muddy", "tiny", "distant", "purple", "noisy", "soft"),
        "adj2": Distinct("adj"),
        "noun": ("garden", "window", "river", "teacher", "bicycle", "letter", "kitchen", "mountain", "market",
                 "doctor", "basket", "village", "painter", "blanket", "tower", "engine", "harbour", "forest",
                 "bridge", "library", "candle", "jacket", "station", "island", "orchard", "lantern", "factory",
                 "museum", "piano", "umbrella"),
        "plural": ("apples", "boxes", "horses", "letters", "candles", "stones", "children", "birds", "tickets",
                   "questions", "flowers", "boats", "coins", "books", "chairs", "potatoes", "pencils", "windows",
                   "sheep", "bottles"),
        "verb": ("open", "carry", "clean", "visit", "repair", "watch", "follow", "describe", "borrow", "check",
                 "paint", "move", "close", "find", "bring", "measure"),
        "verb_past": ("found", "painted", "carried", "opened", "cleaned", "visited", "repaired", "watched",
                      "followed", "described", "borrowed", "noticed", "dropped", "remembered", "moved",
                      "photographed", "sold", "built"),
        "place": ("near the station", "behind the old church", "across the river", "in the small kitchen",
                  "at the top of the hill", "under the bridge", "by the harbour", "inside the museum",
                  "along the narrow road", "next to the school", "in the back garden", "on the second floor"),
        "relative": ("brother", "sister", "neighbour", "uncle", "aunt", "friend", "cousin", "grandmother", "boss"),
        "num": range(2, 100),
    },
)

TRAVEL = SentenceGenerator(
    "travel",
    templates=(
        "The {transport} to {city} leaves from platform {num} in ten minutes.",
        "Passengers for {city} should change at {city2}.",
        "We apologise for the delay to the {transport} from {city}.",
        "Your {ticket} to {city} is valid until {weekday}.",
        "The {transport} calling at {city} and {city2} is running {num} minutes late.",
        "Please have your {ticket} ready for inspection.",
        "Is this the right {stop} for the {transport} to {city}?",
        "I booked a {seat} on the {transport} to {city} for {weekday}.",
        "The {stop} at {city} will be closed on {weekday}.",
        "Mind the gap between the {transport} and the {stop}.",
        "{Weekday} services to {city} depart every {num} minutes.",
        "Could you tell me when the last {transport} to {city} goes?",
    ),
    slots={
        "transport": ("train", "coach", "ferry", "tram", "express", "night bus", "shuttle", "sleeper"),
        "city": ("Bristol", "Leeds", "Glasgow", "Cardiff", "Norwich", "York", "Exeter", "Dundee", "Brighton",
                 "Swansea", "Carlisle", "Aberdeen", "Inverness", "Plymouth", "Chester", "Belfast"),
        "city2": Distinct("city"),
        "ticket": ("return ticket", "railcard", "boarding pass", "season ticket", "reservation", "travel pass"),
        "weekday": ("Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"),
        "stop": ("platform", "terminal", "bus stop", "ticket office", "waiting room", "departure gate"),
        "seat": ("window seat", "sleeper cabin", "table seat", "front row seat", "aisle seat"),
        "num": range(3, 60),
    },
)

HOUSEHOLD = SentenceGenerator(
    "household",
    templates=(
        "Could you pass me the {food}, please?",
        "I left the {item} on the {furniture} in the {room}.",
        "Don't forget to buy {food} and {food2} on the way home.",
        "The {appliance} has been making a funny noise since {day}.",
        "Shall we have {food} for {meal} tonight?",
        "{Person} wants to paint the {room} {colour}.",
        "Where did you put the {item}?",
        "The {appliance} in the {room} needs a new {part}.",
        "Our {person} always burns the {food} when cooking {meal}.",
        "Turn off the {appliance} before you leave the {room}.",
        "There is some {food} left in the fridge for {meal}.",
        "Somebody moved my {item} from the {furniture} again.",
    ),
    slots={
        "food": ("pancakes", "soup", "rice", "noodles", "carrots", "cheese", "bread", "onions", "porridge",
                 "lemons", "biscuits", "tomatoes", "sausages", "mushrooms"),
        "food2": Distinct("food"),
        "item": ("keys", "scissors", "glasses", "remote control", "phone charger", "notebook", "wallet",
                 "hairbrush", "torch", "headphones"),
        "furniture": ("sofa", "shelf", "table", "cupboard", "desk", "bench", "dresser", "windowsill"),
        "room": ("hallway", "bathroom", "attic", "bedroom", "cellar", "living room", "garage", "pantry"),
        "appliance": ("fridge", "kettle", "washing machine", "dishwasher", "oven", "toaster", "heater",
                      "vacuum cleaner"),
        "meal": ("breakfast", "lunch", "supper", "dinner"),
        "person": ("flatmate", "husband", "wife", "daughter", "son", "landlord", "grandfather"),
        "colour": ("blue", "white", "orange", "grey", "pink", "red"),
        "part": ("plug", "filter", "handle", "switch", "fuse", "hinge"),
        "day": ("Friday", "Saturday", "Tuesday", "last week", "the weekend"),
    },
)

NATURE = SentenceGenerator(
    "nature",
    templates=(
        "Young {animals} often gather {habitat}.",
        "The {animal} hunts {prey} among {plants}.",
        "{Mineral} crystals form slowly inside {rock}.",
        "Botanists catalogued {quantity} species of {plants} across the {region}.",
        "The {region} receives plenty of {weather} throughout {month}.",
        "Fossilised {animals} were excavated from ancient {rock}.",
        "Migrating {animals} trace {landmark} toward warmer latitudes.",
        "The {animal} uses its {bodypart} to sense {prey}.",
        "Zoologists tagged {quantity} {animals} {habitat}.",
        "Every {animal} depends on {plants} for food and cover.",
        "Erosion exposes layers of {rock} along the {region}'s edges.",
        "Biologists believe {animals} navigate using {landmark}.",
    ),
    slots={
        "animal": ("otter", "beetle", "heron", "lizard", "wolf", "penguin", "badger", "dolphin", "moth", "tortoise",
                   "falcon", "salamander", "hedgehog", "walrus"),
        "animals": ("otters", "beetles", "herons", "lizards", "wolves", "salmon", "penguins", "badgers", "dolphins",
                    "moths", "tortoises", "falcons"),
        "prey": ("insects", "shrimp", "worms", "frogs", "seeds", "snails", "mice", "plankton"),
        "habitat": ("around coral reefs", "beside tidal marshes", "within alpine meadows", "around glacial lakes",
                    "amid desert dunes", "beside peat bogs", "within mangrove swamps"),
        "plants": ("ferns", "mosses", "lichens", "reeds", "orchids", "cacti", "conifers", "seaweeds"),
        "mineral": ("quartz", "calcite", "gypsum", "feldspar", "pyrite", "mica"),
        "rock": ("granite", "limestone", "basalt", "sandstone", "shale", "slate"),
        "region": ("tundra", "savanna", "rainforest", "steppe", "archipelago", "delta", "plateau", "prairie"),
        "weather": ("rainfall", "snowfall", "drizzle", "monsoon rain", "frost", "hail"),
        "month": ("January", "February", "March", "April", "October", "November", "December"),
        "quantity": ("dozens of", "hundreds of", "thousands of", "several", "countless", "numerous"),
        "landmark": ("coastlines", "magnetic fields", "star patterns", "valleys", "ocean currents"),
        "bodypart": ("whiskers", "antennae", "feathers", "scales", "snout", "tongue"),
    },
)

TRAIN_GENERATORS: tuple[SentenceGenerator, ...] = (STORY, TRAVEL, HOUSEHOLD)
HELD_OUT_GENERATORS: tuple[SentenceGenerator, ...] = (NATURE,)
GENERATORS = {g.name: g for g in TRAIN_GENERATORS + HELD_OUT_GENERATORS}


def mixed_text(generators: Sequence[SentenceGenerator], rng: np.random.Generator,
               sentences: int | None = None) -> str:
    """Text from one of ``generators``, chosen uniformly (first draw), then :meth:`SentenceGenerator.text`."""
    generator = generators[int(rng.integers(len(generators)))] if len(generators) > 1 else generators[0]
    return generator.text(rng, sentences)


def long_text(generators: Sequence[SentenceGenerator], rng: np.random.Generator, sentences: int) -> str:
    """``sentences`` sentences, each from a generator chosen uniformly (babble recordings)."""
    return " ".join(generators[int(rng.integers(len(generators)))].sentence(rng) for _ in range(sentences))
