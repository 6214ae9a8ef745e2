# ruff: noqa: E501  (data tables: one persona, one exchange, one fact or one question a line)
"""Writes benchmarks/data/dialogue_set.json: a synthetic dialogue-memory set (issue 14 item 7), seeded, deterministic.

Ten users each talk with an assistant over a year (2024) in ~20 dated sessions; every episode is one or two turns
(the user's, and often the assistant's reply). Facts are stated across turns: a pet adopted then taken to the vet,
a job then a new job, a favourite then a new favourite, a rent then a raise, three trips in different months, a
plan told in pieces over several sessions, people (a sibling, a friend, a teacher), numbers. About half of each
user's episodes are ordinary assistant chat (recipes, emails, explanations) that shares words with the facts.

Questions (asked on 2025-01-15, a later agent speaking for the user) come in kinds:
  single-fact       one episode holds the answer
  multi-evidence    the answer spans 2-4 episodes (all are evidence; coverage counts how many are found)
  temporal          needs the session date ("what trip did I take last March", "when did I adopt ...")
  knowledge-update  a fact stated, then changed: the newer episode is the evidence, the older one is in
                    ``superseded`` (finding it first gives a stale answer)
  adversarial       the premise is false (a cat when the user has a dog; the user's own job asked as a friend's):
                    the evidence is the episode that shows the premise wrong
  unanswerable      never said: no evidence (not scored for retrieval; kept for a later abstention measure)

The questions were written with the episodes, before any search ran on them; the data file is committed, this
script only documents how it was made.

    python benchmarks/make_dialogue_set.py   # rewrites benchmarks/data/dialogue_set.json
"""

from __future__ import annotations

import json
import random
from datetime import date, timedelta
from pathlib import Path
from typing import Any

SEED = 1407
ASKED_ON = date(2025, 1, 15)
OUT = Path(__file__).parent / "data" / "dialogue_set.json"
MONTHS = "January February March April May June July August September October November December".split()

PERSONAS: list[dict[str, Any]] = [
    {
        "user": "maya", "species": "dog", "pet": "Biscuit", "breed": "beagle", "vet_issue": "an ear infection",
        "trick": "to roll over", "relation": "sister", "sib": "Nora", "sib_job": "pediatric nurse",
        "sib_news": "she's expecting twins", "friend": "Theo", "met": "the bouldering gym",
        "job1": ("graphic designer", "Pixelworks"), "job2": ("art director", "Lumen Studio"),
        "fav": ("coffee", "flat white", "iced oat latte"), "rent": (1450, 1590), "allergy": "peanuts",
        "instrument": "cello", "teacher": "Mr. Albers", "piece": "the Bach prelude in G",
        "trips": [("Lisbon", "ate way too many pastéis de nata and rode tram 28"),
                  ("Kyoto", "walked through the bamboo grove at dawn"),
                  ("Reykjavik", "soaked in a geothermal lagoon and saw the northern lights")],
        "race": ("Brighton", "half marathon", "2:04"), "car": "a used Honda Jazz",
        "plan": "our tenth anniversary weekend", "partner": "Sam",
        "plan_bits": ["I want to surprise Sam for our tenth anniversary, maybe a cabin somewhere quiet.",
                      "Booked a cabin in the Lake District for the anniversary, two nights in October.",
                      "Sam's mum agreed to look after Biscuit while we're away for the anniversary.",
                      "Reserved a table at a little Cumbrian restaurant for the anniversary dinner."],
        "wrong_species": "cat", "not_trip": "Buenos Aires",
    },
    {
        "user": "tom", "species": "cat", "pet": "Pickle", "breed": "tabby", "vet_issue": "a swallowed hair tie",
        "trick": "to high-five", "relation": "brother", "sib": "Eddie", "sib_job": "firefighter",
        "sib_news": "he's getting married in the spring", "friend": "Rosa", "met": "a pottery class",
        "job1": ("junior accountant", "Hartley & Co"), "job2": ("financial analyst", "Northwind Energy"),
        "fav": ("beer", "hazy IPA", "Czech pilsner"), "rent": (980, 1075), "allergy": "shellfish",
        "instrument": "guitar", "teacher": "Dana", "piece": "Blackbird",
        "trips": [("Edinburgh", "climbed Arthur's Seat in the rain"),
                  ("Porto", "did a port wine tasting by the river"),
                  ("Montreal", "ate poutine at two in the morning after a jazz show")],
        "race": ("Leeds", "10k", "51 minutes"), "car": "a secondhand Ford Focus",
        "plan": "moving into a new flat", "partner": "Jules",
        "plan_bits": ["Jules and I are finally looking for a bigger flat, ideally near the canal.",
                      "We put down a deposit on a two-bed near the canal, keys on the 1st of September.",
                      "Hired a removal van for the move, it's coming at 8am on moving day.",
                      "Ordered a sofa for the new place, delivery is a week after we get the keys."],
        "wrong_species": "dog", "not_trip": "Tokyo",
    },
    {
        "user": "priya", "species": "rabbit", "pet": "Clover", "breed": "lop-eared", "vet_issue": "overgrown teeth",
        "trick": "to come when called", "relation": "cousin", "sib": "Arjun", "sib_job": "airline pilot",
        "sib_news": "he just bought a house in Pune", "friend": "Mei", "met": "book club",
        "job1": ("data analyst", "Brightline Insurance"), "job2": ("machine learning engineer", "Quanta Health"),
        "fav": ("tea", "masala chai", "genmaicha"), "rent": (1800, 1950), "allergy": "penicillin",
        "instrument": "violin", "teacher": "Ms. Okafor", "piece": "Meditation from Thaïs",
        "trips": [("Marrakech", "got lost in the souks and bought a brass lantern"),
                  ("Vancouver", "kayaked around Stanley Park"),
                  ("Seoul", "hiked Bukhansan and ate at Gwangjang market")],
        "race": ("Bristol", "half marathon", "1:58"), "car": "a leased Kia Niro",
        "plan": "my parents' 40th wedding anniversary party", "partner": "Dev",
        "plan_bits": ["I'm organising my parents' 40th wedding anniversary party, thinking a garden party.",
                      "Booked a marquee and a caterer doing South Indian food for my parents' anniversary.",
                      "Sent the invitations for the anniversary party, 60 guests so far.",
                      "Found a dhol player for the party, he'll play after the cake."],
        "wrong_species": "hamster", "not_trip": "Cairo",
    },
    {
        "user": "lukas", "species": "parrot", "pet": "Kiwi", "breed": "African grey", "vet_issue": "a plucked feather patch",
        "trick": "to whistle the Star Wars theme", "relation": "sister", "sib": "Greta", "sib_job": "architect",
        "sib_news": "she won a design competition", "friend": "Jonas", "met": "university",
        "job1": ("backend developer", "Fernweh Travel"), "job2": ("engineering manager", "Kranich Logistics"),
        "fav": ("breakfast", "muesli with yogurt", "shakshuka"), "rent": (1120, 1240), "allergy": "bee stings",
        "instrument": "piano", "teacher": "Frau Becker", "piece": "Clair de lune",
        "trips": [("Tallinn", "walked the old town walls in the snow"),
                  ("Dubrovnik", "swam off the rocks below the city walls"),
                  ("Bergen", "took the funicular up Mount Fløyen")],
        "race": ("Hamburg", "marathon", "3:49"), "car": "an old VW Golf",
        "plan": "renovating the kitchen", "partner": "Mira",
        "plan_bits": ["Mira and I want to redo the kitchen this year, the cabinets are falling apart.",
                      "Chose dark green cabinets and an oak worktop for the kitchen.",
                      "The kitchen fitter can start on the 4th of November, it should take three weeks.",
                      "Got the electrician booked to move the sockets before the kitchen fitter arrives."],
        "wrong_species": "dog", "not_trip": "Lima",
    },
    {
        "user": "sofia", "species": "dog", "pet": "Luna", "breed": "border collie", "vet_issue": "a torn paw pad",
        "trick": "to weave between my legs", "relation": "brother", "sib": "Mateo", "sib_job": "high school chemistry teacher",
        "sib_news": "he's moving to Chile for a year", "friend": "Inés", "met": "salsa classes",
        "job1": ("paralegal", "Ortega Legal"), "job2": ("immigration lawyer", "Castell & Reyes"),
        "fav": ("dessert", "tiramisu", "pistachio gelato"), "rent": (1300, 1385), "allergy": "latex",
        "instrument": "ukulele", "teacher": "Keoni", "piece": "Somewhere Over the Rainbow",
        "trips": [("Oaxaca", "took a mole cooking class"),
                  ("Hanoi", "ate bún chả on a tiny plastic stool"),
                  ("Queenstown", "did a bungee jump off the Kawarau bridge")],
        "race": ("Valencia", "10k", "47 minutes"), "car": "a red Fiat 500",
        "plan": "my best friend's hen party", "partner": "Álvaro",
        "plan_bits": ["I'm maid of honour, so I'm planning Carla's hen party, she wants something outdoorsy.",
                      "Booked a farmhouse near Segovia for Carla's hen weekend, sleeps twelve.",
                      "Sorted a paddleboarding session for the hen party on the Saturday morning.",
                      "Collected the money for the hen weekend, everyone paid 140 euros."],
        "wrong_species": "rabbit", "not_trip": "Nairobi",
    },
    {
        "user": "ken", "species": "tortoise", "pet": "Mochi", "breed": "Hermann's", "vet_issue": "a cracked shell",
        "trick": "to take strawberries from my hand", "relation": "sister", "sib": "Aiko", "sib_job": "marine biologist",
        "sib_news": "she's leading a reef survey in Okinawa", "friend": "Marcus", "met": "a hackathon",
        "job1": ("QA tester", "Bluefin Games"), "job2": ("game designer", "Orbital Arcade"),
        "fav": ("ramen", "tonkotsu", "spicy miso"), "rent": (2100, 2240), "allergy": "sesame",
        "instrument": "drums", "teacher": "Rico", "piece": "Take Five",
        "trips": [("Cape Town", "hiked up Table Mountain"),
                  ("Santiago", "skied at Valle Nevado"),
                  ("Krakow", "toured the salt mine")],
        "race": ("Osaka", "half marathon", "1:45"), "car": "a Toyota Prius",
        "plan": "proposing to my girlfriend", "partner": "Hana",
        "plan_bits": ["I think I'm going to propose to Hana this year, I need to find a ring.",
                      "Picked up the ring, white gold with a small sapphire, it's hidden in my sock drawer.",
                      "Planning to propose at the Kamakura beach at sunset where we had our first date.",
                      "Hana's sister is in on it and will hide nearby to take photos."],
        "wrong_species": "cat", "not_trip": "Helsinki",
    },
    {
        "user": "amara", "species": "cat", "pet": "Juniper", "breed": "Maine Coon", "vet_issue": "a bladder infection",
        "trick": "to open the cupboard", "relation": "brother", "sib": "Kofi", "sib_job": "sound engineer",
        "sib_news": "he's touring with a band in Europe", "friend": "Leah", "met": "a volunteering shift at the food bank",
        "job1": ("ward nurse", "St Mary's Hospital"), "job2": ("nurse practitioner", "Greenway Clinic"),
        "fav": ("podcast", "a true crime show", "a history podcast about ancient Rome"), "rent": (1250, 1340),
        "allergy": "ibuprofen",
        "instrument": "saxophone", "teacher": "Mr. Duval", "piece": "Summertime",
        "trips": [("Accra", "visited my grandmother and went to Labadi beach"),
                  ("Barcelona", "saw the Sagrada Família"),
                  ("Copenhagen", "cycled everywhere and ate too many pastries")],
        "race": ("London", "10k", "58 minutes"), "car": "a grey Nissan Leaf",
        "plan": "my PhD application", "partner": "Femi",
        "plan_bits": ["I'm thinking about applying for a PhD in public health next autumn.",
                      "Emailed Professor Whitlock about supervising my PhD, she wants a proposal.",
                      "Finished the first draft of my research proposal on maternal health.",
                      "Asked my old manager and my master's tutor for references for the PhD."],
        "wrong_species": "parrot", "not_trip": "Rio de Janeiro",
    },
    {
        "user": "diego", "species": "dog", "pet": "Chorizo", "breed": "dachshund", "vet_issue": "a slipped disc",
        "trick": "to fetch the newspaper", "relation": "cousin", "sib": "Valentina", "sib_job": "veterinarian",
        "sib_news": "she opened her own clinic", "friend": "Pablo", "met": "a five-a-side football league",
        "job1": ("line cook", "La Brasa"), "job2": ("head chef", "Mar y Monte"),
        "fav": ("football club", "Boca Juniors", "River Plate"), "rent": (890, 960), "allergy": "cats",
        "instrument": "bandoneon", "teacher": "Don Ernesto", "piece": "Libertango",
        "trips": [("Mendoza", "cycled between vineyards"),
                  ("Cusco", "hiked to Machu Picchu"),
                  ("Madrid", "watched a match at the Bernabéu")],
        "race": ("Buenos Aires", "marathon", "4:12"), "car": "a beat-up Renault Kangoo",
        "plan": "opening a food truck", "partner": "Lucía",
        "plan_bits": ["I've been dreaming of starting a food truck doing choripán and empanadas.",
                      "Found a used food truck for sale, needs a new fridge but the grill is fine.",
                      "Applied for the street food permit for the truck, they said six weeks.",
                      "Lucía designed the logo for the food truck, a grinning sausage with a hat."],
        "wrong_species": "cat", "not_trip": "Havana",
    },
    {
        "user": "hannah", "species": "hamster", "pet": "Nugget", "breed": "Syrian", "vet_issue": "a wet tail scare",
        "trick": "to run through a cardboard maze", "relation": "sister", "sib": "Ruth", "sib_job": "police detective",
        "sib_news": "she got promoted to sergeant", "friend": "Olivia", "met": "a knitting circle",
        "job1": ("primary school teacher", "Oakfield Primary"), "job2": ("deputy head", "Riverside Academy"),
        "fav": ("TV series", "a baking competition show", "a Scandinavian crime drama"), "rent": (1050, 1130),
        "allergy": "pollen",
        "instrument": "flute", "teacher": "Mrs. Finch", "piece": "Syrinx",
        "trips": [("Galway", "heard live trad music in a pub every night"),
                  ("Florence", "climbed the Duomo"),
                  ("Amsterdam", "rode a canal boat and visited the Anne Frank house")],
        "race": ("Manchester", "5k parkrun", "29:40"), "car": "a blue Skoda Fabia",
        "plan": "my wedding", "partner": "Ben",
        "plan_bits": ["Ben and I set a date, we're getting married next June!",
                      "Booked the venue, a converted barn in the Cotswolds, for the wedding.",
                      "Said yes to a dress today, ivory with lace sleeves.",
                      "Our wedding photographer is Priti, she did my cousin's wedding too."],
        "wrong_species": "rabbit", "not_trip": "Prague",
    },
    {
        "user": "omar", "species": "cat", "pet": "Sultan", "breed": "Persian", "vet_issue": "an eye infection",
        "trick": "to sit on command", "relation": "brother", "sib": "Youssef", "sib_job": "dentist",
        "sib_news": "he and his wife had a baby girl", "friend": "Karim", "met": "the mosque's youth group",
        "job1": ("civil engineer", "Atlas Construction"), "job2": ("project manager", "Delta Infrastructure"),
        "fav": ("sport to watch", "tennis", "Formula 1"), "rent": (1600, 1720), "allergy": "dust mites",
        "instrument": "oud", "teacher": "Ustadh Nabil", "piece": "Lamma Bada Yatathanna",
        "trips": [("Istanbul", "took a ferry up the Bosphorus"),
                  ("Muscat", "went dolphin watching"),
                  ("Granada", "toured the Alhambra at night")],
        "race": ("Dubai", "half marathon", "2:11"), "car": "a white Hyundai Tucson",
        "plan": "taking my parents on Umrah", "partner": "Layla",
        "plan_bits": ["I want to take my parents on Umrah this year, it's been their wish for ages.",
                      "Applied for the visas for my parents' Umrah trip.",
                      "Booked a hotel walking distance from the Haram for the Umrah trip.",
                      "Arranged a wheelchair for my father at Jeddah airport for the Umrah journey."],
        "wrong_species": "dog", "not_trip": "Bangkok",
    },
]  # fmt: skip

# Ordinary assistant chat: a user asks, the assistant answers. Shares words with the facts (dinner, trip, email,
# music, running, money...) without stating any of them.
FILLER: list[tuple[str, str]] = [
    ("Can you suggest a quick dinner with chickpeas and spinach?", "Try a chickpea and spinach curry: onion, garlic, a tin of tomatoes, garam masala, 20 minutes."),
    ("Help me word an email asking my manager for next Friday off.", "Sure: 'Hi, would it be possible for me to take next Friday as annual leave? My work is covered.'"),
    ("What's a good stretch for lower back pain?", "Child's pose and knee-to-chest stretches, held for 30 seconds, are gentle places to start."),
    ("Recommend a sci-fi novel that isn't too long.", "The Martian or Project Hail Mary are fun and fast; Klara and the Sun if you want something quieter."),
    ("How do I get a red wine stain out of a carpet?", "Blot, don't rub; cold water, then a paste of baking soda, leave it and vacuum."),
    ("Explain compound interest like I'm ten.", "Your money earns a little extra, and next year the extra earns extra too, like a snowball."),
    ("What's the weather usually like in late autumn up north?", "Cool and wet, often 5-10 degrees with short days; pack layers and a waterproof."),
    ("Give me a 20 minute bodyweight workout.", "Three rounds: 15 squats, 10 push-ups, 20 lunges, 30 second plank, 1 minute rest."),
    ("How long should I boil an egg for a runny yolk?", "About six minutes from boiling, then straight into cold water."),
    ("Can you proofread this sentence: 'Their going to the meeting tomorow.'", "'They're going to the meeting tomorrow.'"),
    ("What's the difference between a Roth IRA and a traditional one?", "Roth: taxed now, tax-free later. Traditional: tax break now, taxed when you withdraw."),
    ("I can't sleep lately, any tips?", "Keep a fixed wake time, no screens the last hour, cooler room, and cut caffeine after noon."),
    ("Suggest a name for a book club.", "Novel Idea, Spine Tinglers, or The Chapter and Verse Society."),
    ("How many cups of flour are in a kilo?", "Roughly eight cups of plain flour, depending on how you scoop."),
    ("Write a short birthday message for a coworker.", "Happy birthday! Thanks for making the office a brighter place, have a brilliant day."),
    ("Is it safe to leave rice out overnight?", "Better not: cooked rice can grow Bacillus cereus; cool it within an hour and refrigerate."),
    ("What's a good houseplant for a dark room?", "A snake plant, ZZ plant or pothos all cope with low light."),
    ("Translate 'where is the train station' into Spanish.", "'¿Dónde está la estación de tren?'"),
    ("How do I make my laptop battery last longer?", "Lower the brightness, close background apps, and avoid keeping it at 100% all the time."),
    ("Can you give me a packing list for a weekend away?", "Two outfits, sleepwear, toiletries, chargers, a light jacket, medication, and a book."),
    ("What's a polite way to decline a wedding invitation?", "Thank them warmly, say you can't attend, and send a card or gift with your best wishes."),
    ("Explain what a mortgage offer in principle is.", "A lender's early estimate of how much they'd lend you, based on a soft check of your finances."),
    ("What stretches help before a run?", "Dynamic ones: leg swings, walking lunges, high knees; save static stretching for after."),
    ("Give me three ideas for a rainy Sunday.", "A film marathon, baking bread, or a museum you've never visited."),
    ("How do I descale a kettle?", "Half water, half white vinegar, boil, leave an hour, rinse well."),
    ("Summarise the plot of Pride and Prejudice in two lines.", "Elizabeth Bennet misjudges the proud Mr Darcy; both learn humility and marry."),
    ("What's a good gift for someone who has everything?", "An experience: a cooking class, concert tickets, or a hot air balloon ride."),
    ("How much water should I drink in a day?", "Around two litres for most adults, more if it's hot or you exercise."),
    ("Can you help me budget 2,000 a month?", "Try 50/30/20: 1,000 needs, 600 wants, 400 savings, and adjust from there."),
    ("What's the best way to learn to touch type?", "A free typing tutor for 15 minutes a day, eyes on the screen, accuracy before speed."),
    ("Write a haiku about Monday mornings.", "Alarm bells again / coffee steam and heavy eyes / the week yawns awake"),
    ("How do I reset my router?", "Hold the reset button for about 10 seconds with a paperclip, then set it up again."),
    ("Any tips for a job interview tomorrow?", "Research the company, prepare three stories of your work, and ask them a question at the end."),
    ("What's the capital of Australia?", "Canberra."),
    ("Suggest a playlist theme for a dinner party.", "Bossa nova and soul: Astrud Gilberto, Bill Withers, Norah Jones."),
    ("How do I keep cut flowers fresh?", "Trim the stems at an angle, change the water every two days, keep them out of the sun."),
    ("What should I look for when buying a used bike?", "A straight frame, smooth gears, good brakes, and no rust on the chain."),
    ("Can you explain what inflation does to savings?", "It shrinks what your money can buy, so savings earning below inflation lose value."),
    ("Give me a simple pancake recipe.", "One cup flour, one cup milk, one egg, pinch of salt; rest 10 minutes, fry in butter."),
    ("How do I politely remind a friend they owe me money?", "Keep it light: 'Hey, just a nudge about the 40 from dinner, no rush this week.'"),
    ("What's the etiquette for tipping in restaurants abroad?", "It varies: 10-15% in much of Europe if service isn't included, less common in Japan."),
    ("Help me write a complaint about a late delivery.", "State the order number, the promised date, what happened, and what you want: a refund or redelivery."),
]  # fmt: skip

ACK = [
    "That's wonderful, congratulations!",
    "Oh nice, thanks for telling me.",
    "That sounds lovely.",
    "Good to know, I'll keep that in mind.",
    "Oh no, I hope it gets better soon.",
    "That sounds like a big step!",
    "How exciting!",
]


def fact_episodes(p: dict[str, Any], rng: random.Random) -> list[dict[str, Any]]:
    """The persona's fact-bearing turns, each with a tag (for the questions) and a place in the year (0-1)."""
    sp, pet = p["species"], p["pet"]
    j1, j2 = p["job1"], p["job2"]
    cat, fav1, fav2 = p["fav"]
    r1, r2 = p["rent"]
    race_city, race_kind, race_time = p["race"]
    out: list[dict[str, Any]] = [
        {"tag": "adopt", "at": 0.06, "user": f"We just brought home a little {p['breed']} {sp}! We're calling them {pet}.", "assistant": ACK[0]},
        {"tag": "vet", "at": 0.40, "user": f"Spent the morning at the vet with {pet}, it turned out to be {p['vet_issue']}. Poor thing.", "assistant": ACK[4]},
        {"tag": "trick", "at": 0.72, "user": f"{pet} finally learned {p['trick']}, took weeks of treats.", "assistant": "Patience pays off!"},
        {"tag": "job1", "at": 0.03, "user": f"Work is hectic, being a {j1[0]} at {j1[1]} means month-end is always chaos.", "assistant": "Hang in there."},
        {"tag": "job2", "at": 0.62, "user": f"Big news: I accepted an offer at {j2[1]}! I'll be their new {j2[0]}.", "assistant": ACK[5]},
        {"tag": "fav1", "at": 0.09, "user": f"My usual {cat} is {fav1}, nothing beats it.", "assistant": "A classic choice."},
        {"tag": "fav2", "at": 0.78, "user": f"Funny, I've completely gone off {fav1}. These days it's {fav2} for me every time.", "assistant": "Tastes change!"},
        {"tag": "rent1", "at": 0.12, "user": f"Rent is {r1} a month here, which eats a big chunk of my salary.", "assistant": "That is a lot, it's worth tracking."},
        {"tag": "rent2", "at": 0.68, "user": f"The landlord just put the rent up to {r2}. Ugh.", "assistant": "Sorry, that's frustrating."},
        {"tag": "race", "at": 0.33, "user": f"Did the {race_city} {race_kind} this morning, finished in {race_time}! Legs are jelly.", "assistant": ACK[0]},
        {"tag": "sib1", "at": 0.16, "user": f"My {p['relation']} {p['sib']} is a {p['sib_job']}, works crazy shifts.", "assistant": "That sounds demanding."},
        {"tag": "sib2", "at": 0.55, "user": f"Family news: {p['sib']} told us {p['sib_news']}.", "assistant": ACK[6]},
        {"tag": "friend", "at": 0.21, "user": f"Grabbed lunch with {p['friend']} today, we met at {p['met']} years ago and still catch up monthly.", "assistant": "Lovely to keep that up."},
        {"tag": "allergy", "at": 0.27, "user": f"Can you keep in mind that I'm allergic to {p['allergy']}? Had a reaction once and it was scary.", "assistant": "Noted, I'll remember that."},
        {"tag": "hobby1", "at": 0.18, "user": f"I've started taking {p['instrument']} lessons, total beginner.", "assistant": "What a great thing to pick up!"},
        {"tag": "teacher", "at": 0.36, "user": f"My teacher {p['teacher']} is strict about posture but really patient with me.", "assistant": "A good teacher makes all the difference."},
        {"tag": "piece", "at": 0.58, "user": f"I can now play {p['piece']} all the way through on the {p['instrument']} without stopping!", "assistant": ACK[0]},
        {"tag": "car", "at": 0.45, "user": f"I finally bought a car, {p['car']}. No more waiting for buses in the rain.", "assistant": ACK[5]},
    ]  # fmt: skip
    for i, (dest, what) in enumerate(p["trips"]):
        out.append(
            {
                "tag": f"trip{i}",
                "at": (0.20, 0.50, 0.86)[i],
                "user": f"Just got back from {dest}. We {what}.",
                "assistant": rng.choice(["Sounds like an amazing trip!", "What a trip!", ACK[2]]),
            }
        )
    for i, bit in enumerate(p["plan_bits"]):
        out.append({"tag": f"plan{i}", "at": (0.24, 0.47, 0.65, 0.82)[i], "user": bit, "assistant": rng.choice(ACK)})
    return out


def month_of(d: date) -> str:
    return f"{MONTHS[d.month - 1]} {d.year}"


def questions(p: dict[str, Any], key: dict[str, str], when: dict[str, date]) -> list[dict[str, Any]]:
    """The persona's questions, each with its evidence (episode keys), kind and expected answer."""
    sp, pet = p["species"], p["pet"]
    cat = p["fav"][0]
    t = p["trips"]
    month1 = MONTHS[when["trip0"].month - 1]
    qs: list[dict[str, Any]] = [
        # single-fact
        {"kind": "single-fact", "q": f"Remind me, what name did we give our {sp}?", "ev": ["adopt"], "a": pet},
        {"kind": "single-fact", "q": f"What does {p['sib']} do for a living?", "ev": ["sib1"], "a": p["sib_job"]},
        {"kind": "single-fact", "q": f"How do I know {p['friend']}?", "ev": ["friend"], "a": p["met"]},
        {"kind": "single-fact", "q": "Is there anything I react badly to that you should avoid suggesting?", "ev": ["allergy"], "a": p["allergy"]},
        {"kind": "single-fact", "q": f"Who teaches me {p['instrument']}?", "ev": ["teacher"], "a": p["teacher"]},
        {"kind": "single-fact", "q": "What vehicle do I own?", "ev": ["car"], "a": p["car"]},
        # knowledge update: the newer episode answers
        {"kind": "knowledge-update", "q": "Who is my employer these days, and what's my role?", "ev": ["job2"], "superseded": ["job1"], "a": f"{p['job2'][0]} at {p['job2'][1]}"},
        {"kind": "knowledge-update", "q": f"What's my current favourite {cat}?", "ev": ["fav2"], "superseded": ["fav1"], "a": p["fav"][2]},
        {"kind": "knowledge-update", "q": "How much do I pay to rent my place now?", "ev": ["rent2"], "superseded": ["rent1"], "a": str(p["rent"][1])},
        # temporal: the date decides
        {"kind": "temporal", "q": f"Where did I go on holiday in {month_of(when['trip1'])}?", "ev": ["trip1"], "a": t[1][0]},
        {"kind": "temporal", "q": f"Which city did I visit last {month1}?", "ev": ["trip0"], "a": t[0][0]},
        {"kind": "temporal", "q": f"What race did I run in {month_of(when['race'])}, and how did it go?", "ev": ["race"], "a": f"{p['race'][0]} {p['race'][1]} in {p['race'][2]}"},
        {"kind": "temporal", "q": f"When did {pet} come to live with us?", "ev": ["adopt"], "a": month_of(when["adopt"])},
        # multi-evidence: every piece is needed
        {"kind": "multi-evidence", "q": f"What have I arranged so far for {p['plan']}?", "ev": ["plan0", "plan1", "plan2", "plan3"], "a": "all four steps"},
        {"kind": "multi-evidence", "q": "List every place I travelled to last year.", "ev": ["trip0", "trip1", "trip2"], "a": ", ".join(x[0] for x in t)},
        {"kind": "multi-evidence", "q": "How are my music lessons going: who teaches me, and what can I play?", "ev": ["hobby1", "teacher", "piece"], "a": f"{p['teacher']}; {p['piece']}"},
        {"kind": "multi-evidence", "q": f"Give me a rundown of {pet}'s health and training over the past year.", "ev": ["vet", "trick"], "a": f"{p['vet_issue']}; learned {p['trick']}"},
        # adversarial: a false premise, shown false by the evidence
        {"kind": "adversarial", "q": f"What's the name of my {p['wrong_species']}?", "ev": ["adopt"], "a": f"no {p['wrong_species']}: a {sp} called {pet}"},
        {"kind": "adversarial", "q": f"Which company did {p['friend']} move to when they changed jobs?", "ev": ["job2"], "a": f"not stated; the user moved to {p['job2'][1]}"},
        # unanswerable: never said
        {"kind": "unanswerable", "q": f"How was my trip to {p['not_trip']}?", "ev": [], "a": "never mentioned"},
    ]  # fmt: skip
    for q in qs:
        q["evidence"] = [key[tag] for tag in q.pop("ev")]
        if "superseded" in q:
            q["superseded"] = [key[tag] for tag in q["superseded"]]
    return qs


def build() -> dict[str, Any]:
    rng = random.Random(SEED)
    episodes: list[dict[str, Any]] = []
    all_questions: list[dict[str, Any]] = []
    for p in PERSONAS:
        facts = fact_episodes(p, rng)
        fillers = rng.sample(FILLER, 35)
        turns = facts + [{"tag": None, "at": rng.random(), "user": u, "assistant": a} for u, a in fillers]
        turns.sort(key=lambda x: x["at"])
        # ~20 sessions over 2024, three episodes each, at increasing dates (3-30 days apart).
        day = date(2024, 1, 2) + timedelta(days=rng.randint(0, 10))
        key: dict[str, str] = {}
        when: dict[str, date] = {}
        for i, turn in enumerate(turns):
            if i and i % 3 == 0:
                day += timedelta(days=rng.randint(10, 18))
            session = i // 3 + 1
            ep_key = f"{p['user']}-{i + 1:03d}"
            two_turns = turn["tag"] is None or rng.random() < 0.6  # facts: sometimes the user's turn alone
            text = f"User: {turn['user']}" + (f"\nAssistant: {turn['assistant']}" if two_turns else "")
            episodes.append(
                {"key": ep_key, "user": p["user"], "session": session, "date": day.isoformat(), "text": text}
            )
            if turn["tag"]:
                key[turn["tag"]] = ep_key
                when[turn["tag"]] = day
        assert day < ASKED_ON, (p["user"], day)
        assert len({when[f"trip{i}"].month for i in range(3)}) == 3 and when["trip0"].month > 1, p["user"]
        for n, q in enumerate(questions(p, key, when), 1):
            all_questions.append({"id": f"{p['user']}-q{n:02d}", "user": p["user"], **q})
    return {
        "about": __doc__.split("\n\n    python")[0],
        "asked_on": ASKED_ON.isoformat(),
        "episodes": episodes,
        "questions": all_questions,
    }


if __name__ == "__main__":
    data = build()
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n")
    kinds: dict[str, int] = {}
    for q in data["questions"]:
        kinds[q["kind"]] = kinds.get(q["kind"], 0) + 1
    print(f"{len(data['episodes'])} episodes, {len(data['questions'])} questions: {kinds} -> {OUT}")
