"""The texts of bench's speculation scenarios: a closed-context document to quote (qa), code to
rewrite with one change (code), and open questions (chat). Written for the bench: a model
copying from the prompt is what the first two measure; the third has nothing to copy."""

from __future__ import annotations

from airochat.domain.closed_context import Document, closed_context, plain_format

HARBOUR = """\
The harbour of Veldmoor was built in three stages between 1791 and 1864. The first stage, paid
for by a loan of 40,000 guilders from the merchants' guild, gave the town a single stone quay
on the north side of the river mouth, long enough for four sailing ships to unload at once.
The engineer in charge, Hendrik Oosterlaan, insisted that the quay be founded on oak piles
driven twelve metres into the clay, a decision that his contemporaries thought extravagant and
that later engineers praised when the great storm of 1824 destroyed every wooden jetty on the
coast but left the stone quay standing.

The second stage followed the storm. Between 1826 and 1838 the town dug a tidal basin behind
the quay and closed it with a pair of lock gates, so that ships could stay afloat at low tide.
The basin measured 310 metres by 95 metres and was, for a few years, the largest enclosed
harbour basin in the province. Its gates were made of teak imported from Java, and each leaf
weighed about eighteen tonnes. Twelve men at two capstans needed nearly twenty minutes to open
them; the harbour master's log records that in the winter of 1831 the gates froze shut for
eleven days, and ships waited outside in the roads until the ice broke.

The third stage was the work of the railway. When the line from the capital reached Veldmoor
in 1859, the railway company bought the land east of the basin and built a second quay with
rails along its whole length, four steam cranes and a goods shed 140 metres long. Coal came in
by ship from England and left by train for the inland towns; grain and timber travelled the
other way. By 1864 the harbour handled about 210,000 tonnes of goods a year, seven times as
much as in 1820, and the town's population had grown from 6,500 to just over 19,000.

Life on the quays was hard and poorly paid. Dock workers were hired by the day at the "call",
a gathering at six in the morning outside the harbour office where foremen chose the men they
wanted. A man who was not chosen earned nothing that day. In 1872 the dockers formed a mutual
society, the Veldmoor Harbour Workers' Fund, which paid a small allowance to members who were
injured or ill; within ten years it had 1,400 members and owned a house on Kade Street where
its committee met on the first Monday of every month. The fund's records, now kept in the town
archive, are the main source for what historians know about the dockers' wages, which rose
from about 1.10 guilders a day in 1872 to 1.65 guilders in 1900.

The harbour's decline began with the new ship canal. When the canal from the coast to the
capital opened in 1876, large steamships could sail directly to the capital's own docks, and
Veldmoor lost most of its through trade within a decade. The railway company closed two of its
four cranes in 1889 and sold the goods shed to a margarine factory in 1897. The tidal basin
silted up because nobody paid to dredge it, and by 1910 only fishing boats and small coasters
still used the harbour. A report by the provincial water board in 1912 described the lock
gates as "rotten beyond repair" and recommended that the basin be filled in.

The basin was not filled in. During the First World War the neutral government requisitioned
the harbour as a naval depot, repaired the gates with steel and dredged the basin to a depth
of six metres. After the war the navy left, but the repairs made the harbour usable again, and
in the 1920s Veldmoor found a new trade in sand and gravel for the building boom in the
capital. Barges carried the gravel down the river to the basin, where it was loaded onto
coasters. This trade lasted until 1968, when the last gravel pit upriver was closed to protect
the water supply.

Today the harbour is a protected monument. The stone quay of 1791, the lock gates and the
railway quay with one surviving steam crane were restored between 1984 and 1991 at a cost of
23 million guilders, shared by the state, the province and the town. The goods shed houses the
Veldmoor Maritime Museum, which opened in 1993 and receives about 85,000 visitors a year. Its
most popular exhibit is a working model of the lock gates, built at one tenth of their size,
which visitors can open with a small capstan; a sign beside it notes that the model, like the
real gates in 1831, takes longer to open than most people expect. The museum's director, Anna
Vermeer, has said that the harbour's history is "a history of the town deciding, again and
again, not to give up on its own front door."
"""

QA_QUESTION = (
    "Quote the sentences of the document that describe the second stage of the harbour, word "
    "for word, then summarise the document in two sentences."
)

CODE = '''\
import csv
from dataclasses import dataclass
from pathlib import Path


@dataclass
class Reading:
    station: str
    day: str
    rain_mm: float
    max_temp_c: float


def load_readings(path: Path) -> list[Reading]:
    """Read the weather stations' CSV file: station, day, rain_mm, max_temp_c."""
    readings = []
    with path.open(newline="") as fh:
        for row in csv.DictReader(fh):
            readings.append(
                Reading(
                    station=row["station"],
                    day=row["day"],
                    rain_mm=float(row["rain_mm"]),
                    max_temp_c=float(row["max_temp_c"]),
                )
            )
    return readings


def wettest_days(readings: list[Reading], n: int = 5) -> list[Reading]:
    """The n readings with the most rain, wettest first."""
    return sorted(readings, key=lambda r: r.rain_mm, reverse=True)[:n]


def monthly_rain(readings: list[Reading]) -> dict[str, float]:
    """Total rain per month (YYYY-MM) over all stations."""
    totals: dict[str, float] = {}
    for r in readings:
        month = r.day[:7]
        totals[month] = totals.get(month, 0.0) + r.rain_mm
    return totals


def hottest_station(readings: list[Reading]) -> str:
    """The station with the highest average maximum temperature."""
    sums: dict[str, float] = {}
    counts: dict[str, int] = {}
    for r in readings:
        sums[r.station] = sums.get(r.station, 0.0) + r.max_temp_c
        counts[r.station] = counts.get(r.station, 0) + 1
    return max(sums, key=lambda s: sums[s] / counts[s])
'''

CODE_REQUEST = (
    "Rewrite this Python module so that `wettest_days` also takes a `station` argument "
    "(default None: all stations) and keeps only that station's readings. Keep everything "
    "else exactly as it is and give the whole module.\n\n"
)

CHAT = [
    "What makes a good cup of tea?",
    "Why do people enjoy walking in the mountains?",
    "What would you tell someone who is learning to cook?",
]


def scenario_messages(name: str) -> list[str]:
    """The user messages of one speculation scenario: qa, code or chat."""
    if name == "qa":
        doc = Document(HARBOUR, {"title": "The harbour of Veldmoor", "date": "2019-04-02"})
        return [closed_context([doc], QA_QUESTION, {})]
    if name == "code":
        return [plain_format(CODE_REQUEST + CODE)]
    if name == "chat":
        return list(CHAT)
    raise ValueError(name)


SCENARIOS = ("qa", "code", "chat")
