"""Noise banks: built-in stand-ins for MUSAN and RIRS_NOISES, one per use, from disjoint random streams.

A bank folder holds Kaldi data dirs in the layout the augmenter reads
(:class:`pyfunc.config.AugmentConfig`: ``musan_dir`` = the bank folder, ``rir_dir`` = its
``rirs``): ``musan_noise`` (coloured noises, :mod:`pyfunc.corpora.noises`), ``musan_music``
(synthetic music), ``musan_speech`` (babble: one long multi-sentence espeak-ng recording per
babble talker) and ``rirs`` (simulated rooms, :mod:`pyfunc.corpora.rooms`). wav.scp has
absolute paths, utt2spk maps each file to itself; the wavs are 16 kHz mono under ``wav/``.
Besides: ``musan_noise/utt2kind`` (the noise kind of each file), ``musan_speech/speakers.txt``
and ``text`` (the talkers' espeak-ng settings and what they read) and ``rirs/rooms`` (each
room's class, size, target RT60, absorption, image order, source and microphone, and
measured RT60).

Banks (:data:`BANKS`): ``augment`` feeds training augmentation; ``test_hard`` and ``dev``
degrade those evaluation sets. Each bank has its own random stream, its own babble talkers
(voice pairs of :func:`mini_corpus.voices.voice_partition`) and its own rooms and files.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pyfunc.corpora.noises import MUSIC_SECONDS, MUSIC_STREAM, NOISE_KINDS, make_music, make_noise
from pyfunc.corpora.rooms import ROOM_CLASSES, RoomSpec, draw_room, simulate_rir
from pyfunc.corpora.streams import BANKS, stream_rng
from pyfunc.data.audio import SAMPLE_RATE, write_wav
from pyfunc.data.datadir import DataDir, write_data_dir
from pyfunc.data.tables import read_map, read_scp, read_text_table, write_table
from pyfunc.errors import DataError

from .espeak import synthesize_voice, trim_silence
from .texts import TRAIN_GENERATORS, long_text
from .voices import SpeakerSpec, VoicePartition, draw_speakers


@dataclass(frozen=True)
class BankSize:
    """How many files of each kind a bank holds."""

    noise: int
    music: int
    babble: int
    rooms: int


BANKS_SIZES = {
    "augment": BankSize(noise=18, music=8, babble=8, rooms=30),
    "test_hard": BankSize(noise=9, music=0, babble=8, rooms=12),
    "dev": BankSize(noise=9, music=0, babble=6, rooms=8),
}
BANK_PREFIX = {"augment": "a", "test_hard": "h", "dev": "d"}
NOISE_SECONDS = 4.0
BABBLE_SENTENCES = 3
BABBLE_PEAK = 0.5
# The sub-streams of a bank's stream (its talkers use the bank's stream itself).
NOISE_STREAM, BABBLE_STREAM, ROOM_STREAM = 1, 3, 4  # music: MUSIC_STREAM (2) of pyfunc.corpora.noises


def bank_talkers(bank: str, partition: VoicePartition, random_seed: int, count: int) -> list[SpeakerSpec]:
    """The babble talkers of ``bank`` (``b<a|h|d>001``...), on the bank's own voice pairs."""
    return draw_speakers(f"b{BANK_PREFIX[bank]}", f"babble_{bank}", count, partition.babble[bank], random_seed,
                         BANKS[bank])


def bank_rooms(bank: str, random_seed: int, count: int) -> list[RoomSpec]:
    """The rooms of ``bank`` (``<a|h|d>r01``...), the size classes in turn."""
    classes = list(ROOM_CLASSES)
    return [draw_room(f"{BANK_PREFIX[bank]}r{i + 1:02d}", classes[i % len(classes)],
                      stream_rng(random_seed, BANKS[bank], ROOM_STREAM, i)) for i in range(count)]


def noise_ids(bank: str, count: int) -> list[tuple[str, str]]:
    """(file id, noise kind) of the noise files of ``bank``: the kinds in turn."""
    return [(f"{BANK_PREFIX[bank]}n{i + 1:02d}-{NOISE_KINDS[i % len(NOISE_KINDS)]}", NOISE_KINDS[i % len(NOISE_KINDS)])
            for i in range(count)]


def make_bank_item(kind: str, bank: str, index: int, random_seed: int, path: str, what: object,
                   espeak: str = "espeak-ng") -> dict:
    """Write one file of a bank (a process-pool task); return what its tables record.

    ``what`` is the noise kind, None for music, the talker's SpeakerSpec for babble, the
    RoomSpec for a room.
    """
    if kind == "noise":
        audio = make_noise(str(what), stream_rng(random_seed, BANKS[bank], NOISE_STREAM, index), NOISE_SECONDS)
        extra: dict = {}
    elif kind == "music":
        audio = make_music(stream_rng(random_seed, BANKS[bank], MUSIC_STREAM, index), MUSIC_SECONDS)
        extra = {}
    elif kind == "babble":
        spec: SpeakerSpec = what  # type: ignore[assignment]
        text = long_text(TRAIN_GENERATORS, stream_rng(random_seed, BANKS[bank], BABBLE_STREAM, index),
                         BABBLE_SENTENCES)
        speech = trim_silence(synthesize_voice(spec.voice, text, spec.pitch, spec.rate, spec.word_gap, espeak,
                                               f"babble talker {spec.speaker} ({spec.voice})"))
        audio = speech * (BABBLE_PEAK / np.max(np.abs(speech)))
        extra = {"text": text}
    elif kind == "room":
        audio, rt60 = simulate_rir(what)  # type: ignore[arg-type]
        audio = audio / np.max(np.abs(audio)) * 0.9  # the scale is free: the augmenter normalises the energy
        extra = {"rt60": rt60}
    else:
        raise ValueError(f"unknown bank item kind {kind!r}")
    write_wav(path, audio)
    return {"duration": audio.size / SAMPLE_RATE, **extra}


def bank_tasks(bank: str, partition: VoicePartition, random_seed: int, tmp_dir: Path,
               espeak: str) -> tuple[list[tuple], dict]:
    """The tasks that make a bank's files under ``tmp_dir/wav``, and what the tables need to know about them."""
    size = BANKS_SIZES[bank]
    layout: dict = {"noise": noise_ids(bank, size.noise),
                    "music": [f"{BANK_PREFIX[bank]}m{i + 1:02d}" for i in range(size.music)],
                    "babble": bank_talkers(bank, partition, random_seed, size.babble) if size.babble else [],
                    "rooms": bank_rooms(bank, random_seed, size.rooms)}
    tasks = []
    for i, (utt, kind) in enumerate(layout["noise"]):
        tasks.append(("noise", bank, i, random_seed, str(tmp_dir / "wav" / "noise" / f"{utt}.wav"), kind, espeak))
    for i, utt in enumerate(layout["music"]):
        tasks.append(("music", bank, i, random_seed, str(tmp_dir / "wav" / "music" / f"{utt}.wav"), None, espeak))
    for i, spec in enumerate(layout["babble"]):
        tasks.append(("babble", bank, i, random_seed, str(tmp_dir / "wav" / "speech" / f"{spec.speaker}.wav"), spec,
                      espeak))
    for i, room in enumerate(layout["rooms"]):
        tasks.append(("room", bank, i, random_seed, str(tmp_dir / "wav" / "rirs" / f"{room.room}.wav"), room, espeak))
    return tasks, layout


def write_bank_tables(tmp_dir: Path, bank_dir: Path, layout: dict, results: list[dict]) -> None:
    """Write the bank's data dirs into ``tmp_dir`` (wav.scp pointing into ``bank_dir``) and its extra tables.

    ``results`` are those of :func:`bank_tasks`'s tasks, in their order: noise, music, babble, rooms.
    """
    sections = [("musan_noise", "noise", [u for u, _ in layout["noise"]]),
                ("musan_music", "music", layout["music"]),
                ("musan_speech", "speech", [s.speaker for s in layout["babble"]]),
                ("rirs", "rirs", [r.room for r in layout["rooms"]])]
    start, done = 0, {}
    for name, folder, utts in sections:
        done[name], start = results[start:start + len(utts)], start + len(utts)
        if not utts:
            continue
        wav_scp = {u: str(bank_dir / "wav" / folder / f"{u}.wav") for u in utts}
        durations = {u: r["duration"] for u, r in zip(utts, done[name])}
        write_data_dir(tmp_dir / name, DataDir(wav_scp, {u: u for u in utts}, durations))
    write_table(tmp_dir / "musan_noise" / "utt2kind", dict(layout["noise"]))
    if layout["babble"]:
        write_table(tmp_dir / "musan_speech" / "speakers.txt",
                    [(s.speaker, s.subset, s.accent, s.variant, s.pitch, s.rate, s.word_gap) for s in layout["babble"]])
        write_table(tmp_dir / "musan_speech" / "text",
                    {s.speaker: r["text"] for s, r in zip(layout["babble"], done["musan_speech"])})
    write_table(tmp_dir / "rirs" / "rooms",
                [(r.room, r.size_class, *r.dims, r.target_rt60, r.absorption, r.max_order, *r.source, *r.mic,
                  f"{res['rt60']:.3f}") for r, res in zip(layout["rooms"], done["rirs"])])


@dataclass(frozen=True)
class NoiseBank:
    """A bank as read back for degrading speech: file paths by id, noise kinds, room RT60s."""

    noises: dict[str, str]
    kinds: dict[str, str]
    babble: dict[str, str]
    rirs: dict[str, str]
    rt60: dict[str, float]


def read_bank(bank_dir: Path) -> NoiseBank:
    """Read a bank folder written by :func:`mini_corpus.mini_parts.make_bank`."""
    bank_dir = Path(bank_dir)
    try:
        rooms = read_text_table(bank_dir / "rirs" / "rooms", 15, 15)
        rt60 = {room: float(fields[-1]) for room, fields in rooms.items()}
    except (OSError, ValueError) as err:
        raise DataError(f"{bank_dir}/rirs/rooms: cannot read the room table: {err}") from None
    return NoiseBank(noises=read_scp(bank_dir / "musan_noise" / "wav.scp"),
                     kinds=read_map(bank_dir / "musan_noise" / "utt2kind"),
                     babble=read_scp(bank_dir / "musan_speech" / "wav.scp"),
                     rirs=read_scp(bank_dir / "rirs" / "wav.scp"), rt60=rt60)
