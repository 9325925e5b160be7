"""Generate speech-to-text style sentences with exact character spans of personal data.

Each line of the output is `{"text", "entities": [{"start", "end", "label"}], "template", "style"}`
with offsets in Python characters (Unicode code points) of `text`. Sentences come from templates
written for this project; the split into train / dev / test is by template, so the test split only
holds templates never seen in training. Values come from Faker and from lists below, rendered the
way recognisers write them: mostly lower case with numbers spoken ("four two four two", "double
five", "oh"), e-mails spoken ("j fernandez at protonmail dot com"), names sometimes spelled out,
fillers and repetitions; a share in recogniser style (digits, punctuation, capitals). Hard
negatives (order numbers, amounts, clock times, quantities, words that look like names) carry no
entity.

    python generate.py --out data --seed 7
"""

import argparse
import json
import random
import re
from pathlib import Path

from faker import Faker

LABELS = ["PERSON_NAME", "PHONE", "EMAIL", "CREDIT_CARD", "DATE", "SSN", "STREET_ADDRESS", "CITY", "LOCATION"]

ONES = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven",
        "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen"]
TENS = ["", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]
ORDINALS = {"one": "first", "two": "second", "three": "third", "five": "fifth", "eight": "eighth",
            "nine": "ninth", "twelve": "twelfth"}
MONTHS = ["january", "february", "march", "april", "may", "june", "july", "august", "september",
          "october", "november", "december"]

CITIES = [
    "chicago", "houston", "phoenix", "philadelphia", "san antonio", "san diego", "dallas", "austin",
    "jacksonville", "columbus", "charlotte", "indianapolis", "seattle", "denver", "boston", "nashville",
    "detroit", "portland", "memphis", "louisville", "baltimore", "milwaukee", "albuquerque", "tucson",
    "fresno", "sacramento", "atlanta", "miami", "oakland", "minneapolis", "tulsa", "cleveland",
    "new orleans", "pittsburgh", "cincinnati", "orlando", "st louis", "buffalo", "newark", "toledo",
    "los angeles", "new york", "san francisco", "las vegas", "salt lake city", "kansas city",
    "london", "manchester", "birmingham", "leeds", "glasgow", "edinburgh", "liverpool", "bristol",
    "cardiff", "belfast", "dublin", "cork", "paris", "lyon", "marseille", "toulouse", "berlin",
    "munich", "hamburg", "cologne", "frankfurt", "madrid", "barcelona", "valencia", "seville",
    "lisbon", "porto", "rome", "milan", "naples", "turin", "amsterdam", "rotterdam", "brussels",
    "antwerp", "zurich", "geneva", "vienna", "prague", "warsaw", "krakow", "budapest", "stockholm",
    "oslo", "copenhagen", "helsinki", "athens", "istanbul", "toronto", "montreal", "vancouver",
    "calgary", "ottawa", "sydney", "melbourne", "brisbane", "perth", "auckland", "mumbai", "delhi",
    "bangalore", "chennai", "tokyo", "osaka", "seoul", "beijing", "shanghai", "singapore",
    "mexico city", "guadalajara", "bogotá", "lima", "santiago", "buenos aires", "são paulo",
    "rio de janeiro", "cape town", "johannesburg", "nairobi", "lagos", "cairo", "dubai", "tel aviv",
    "málaga", "köln", "zaragoza", "gdańsk", "reykjavík", "springfield", "fairview", "greenville",
]
STATES = [
    "alabama", "alaska", "arizona", "arkansas", "california", "colorado", "connecticut", "delaware",
    "florida", "georgia", "hawaii", "idaho", "illinois", "indiana", "iowa", "kansas", "kentucky",
    "louisiana", "maine", "maryland", "massachusetts", "michigan", "minnesota", "mississippi",
    "missouri", "montana", "nebraska", "nevada", "new hampshire", "new jersey", "new mexico",
    "north carolina", "north dakota", "ohio", "oklahoma", "oregon", "pennsylvania", "rhode island",
    "south carolina", "south dakota", "tennessee", "texas", "utah", "vermont", "virginia",
    "washington state", "west virginia", "wisconsin", "wyoming", "ontario", "quebec", "british columbia",
    "bavaria", "catalonia", "andalusia", "tuscany", "scotland", "wales", "yorkshire", "cornwall",
]
COUNTRIES = [
    "france", "germany", "spain", "italy", "portugal", "ireland", "england", "the uk", "the united states",
    "canada", "mexico", "brazil", "argentina", "colombia", "peru", "chile", "poland", "sweden", "norway",
    "denmark", "finland", "the netherlands", "belgium", "switzerland", "austria", "greece", "turkey",
    "india", "china", "japan", "korea", "australia", "new zealand", "nigeria", "kenya", "egypt",
    "south africa", "israel", "vietnam", "the philippines", "méxico", "perú", "türkiye",
]
DOMAINS = ["gmail", "yahoo", "outlook", "hotmail", "protonmail", "icloud", "aol", "fastmail", "gmx",
           "zoho", "mail", "comcast", "verizon", "acme", "contoso", "example"]
TLDS = ["com", "com", "com", "net", "org", "co dot uk", "de", "io", "es", "fr", "edu"]
FILLERS = ["um", "uh", "uh", "um", "like", "you know", "so", "i mean", "okay", "yeah", "right", "well", "er"]
TITLES = ["mister", "mrs", "miss", "ms", "doctor", "dr", "professor"]
LOCALES = ["en_US", "en_US", "en_US", "en_GB", "en_IE", "es_ES", "es_MX", "de_DE", "fr_FR", "it_IT",
           "pt_BR", "pl_PL", "nl_NL", "en_IN", "sv_SE", "tr_TR", "vi_VN"]

# Templates. A slot is {LABEL} for personal data or {neg:KIND} for a hard negative. The template's
# index in this list (with its list name) is its identity for the split.
TEMPLATES = [
    "my name is {PERSON_NAME}",
    "hi this is {PERSON_NAME} calling from {CITY}",
    "hello my name's {PERSON_NAME} and i'm calling about my account",
    "yes this is {PERSON_NAME} speaking",
    "can i speak to {PERSON_NAME} please",
    "i'm trying to reach {PERSON_NAME} in accounts",
    "the account is under {PERSON_NAME}",
    "it's under my wife's name {PERSON_NAME}",
    "my husband {PERSON_NAME} set it up",
    "you can ask for {PERSON_NAME} when you call back",
    "{PERSON_NAME} told me to call this number",
    "i spoke to {PERSON_NAME} yesterday and she said it was fixed",
    "i was talking with {PERSON_NAME} last week about the refund",
    "thanks {PERSON_NAME} have a great day",
    "okay {PERSON_NAME} i've got that down",
    "so {PERSON_NAME} can you confirm your date of birth",
    "the card holder is {PERSON_NAME}",
    "please put it in the name of {PERSON_NAME}",
    "first name {PERSON_NAME}",
    "last name is {PERSON_NAME}",
    "that's {PERSON_NAME} spelled the usual way",
    "my manager {PERSON_NAME} will join the call",
    "let's ask {PERSON_NAME} and {PERSON_NAME} to review it",
    "{PERSON_NAME} and {PERSON_NAME} are presenting next",
    "i'll hand over to {PERSON_NAME} for the numbers",
    "can you loop in {PERSON_NAME} from legal",
    "{PERSON_NAME} is out sick today",
    "we met {PERSON_NAME} at the conference in {CITY}",
    "the patient's name is {PERSON_NAME} born {DATE}",
    "is this {PERSON_NAME}",
    "am i speaking with {PERSON_NAME}",
    "i'm calling on behalf of my mother {PERSON_NAME}",
    "the contact person is {PERSON_NAME} at {PHONE}",
    "my number is {PHONE}",
    "you can reach me on {PHONE}",
    "call me back at {PHONE}",
    "my cell is {PHONE} and my work number is {PHONE}",
    "the best number to call is {PHONE}",
    "do you have a phone number yes it's {PHONE}",
    "text me at {PHONE} if that's easier",
    "the number on file should be {PHONE}",
    "i changed my phone number to {PHONE} last month",
    "my home phone is {PHONE}",
    "her mobile is {PHONE}",
    "is {PHONE} still a good number for you",
    "dial {PHONE} and ask for billing",
    "my email is {EMAIL}",
    "you can email me at {EMAIL}",
    "send the receipt to {EMAIL} please",
    "the email address on the account is {EMAIL}",
    "it's {EMAIL} all lower case",
    "my work email is {EMAIL} and personal is {EMAIL}",
    "did you get my message from {EMAIL}",
    "please update my email to {EMAIL}",
    "forward it to {EMAIL} and copy me",
    "the login is {EMAIL}",
    "my card number is {CREDIT_CARD}",
    "the card number is {CREDIT_CARD} expiring {neg:EXPIRY}",
    "i'd like to pay with my visa {CREDIT_CARD}",
    "charge it to {CREDIT_CARD}",
    "the long number on the front is {CREDIT_CARD}",
    "okay the card ends in four digits but the full number is {CREDIT_CARD}",
    "use the mastercard {CREDIT_CARD} please",
    "my credit card {CREDIT_CARD} was declined",
    "can you read the card number back {CREDIT_CARD} is that right",
    "my date of birth is {DATE}",
    "i was born on {DATE}",
    "date of birth {DATE}",
    "the appointment is on {DATE}",
    "she was born {DATE} in {CITY}",
    "we moved in on {DATE}",
    "the policy started {DATE}",
    "my birthday is {DATE}",
    "the last payment was made on {DATE}",
    "his dob is {DATE}",
    "i'll be away from {DATE} until {DATE}",
    "the letter was dated {DATE}",
    "my social is {SSN}",
    "my social security number is {SSN}",
    "the last four of my social no the whole thing is {SSN}",
    "ssn {SSN}",
    "for verification my social security is {SSN}",
    "my national insurance number is {SSN}",
    "her social is {SSN} and her date of birth is {DATE}",
    "i live at {STREET_ADDRESS}",
    "my address is {STREET_ADDRESS} {CITY} {LOCATION}",
    "send it to {STREET_ADDRESS}",
    "the delivery address is {STREET_ADDRESS} in {CITY}",
    "we're at {STREET_ADDRESS} near the park",
    "the billing address is {STREET_ADDRESS}",
    "i just moved to {STREET_ADDRESS}",
    "the office is on {STREET_ADDRESS} second floor",
    "pick me up at {STREET_ADDRESS}",
    "my old address was {STREET_ADDRESS} {CITY}",
    "i'm in {CITY}",
    "i live in {CITY} {LOCATION}",
    "i'm calling from {LOCATION}",
    "this is {PERSON_NAME} in {LOCATION}",
    "and i'm {PERSON_NAME} in {LOCATION} originally from {CITY}",
    "i'm originally from {CITY} also",
    "we grew up in {CITY} but moved to {LOCATION}",
    "the branch in {CITY} closed",
    "i'm flying to {CITY} next week",
    "my sister lives in {LOCATION}",
    "they shipped it from {CITY} {LOCATION}",
    "i was born in {CITY}",
    "we're based out of {CITY}",
    "the weather in {CITY} is terrible",
    "i don't hear that in {LOCATION}",
    "we spent the summer in {LOCATION}",
    "is the {CITY} office open",
    "she transferred from the {CITY} team",
    "i've been living in {LOCATION} for ten years",
    "can you confirm your name and date of birth sure {PERSON_NAME} {DATE}",
    "name {PERSON_NAME} phone {PHONE} email {EMAIL}",
    "it's {PERSON_NAME} my number is {PHONE}",
    "this is {PERSON_NAME} from {CITY} my email is {EMAIL}",
    "{PERSON_NAME} at {STREET_ADDRESS} {CITY}",
    "please verify the card {CREDIT_CARD} and the zip code {neg:ZIP}",
    "my name is {PERSON_NAME} and my social is {SSN}",
    "i'm {PERSON_NAME} i live at {STREET_ADDRESS}",
    "the guest {PERSON_NAME} arrives {DATE} from {CITY}",
    "the caller {PERSON_NAME} gave {PHONE} as a callback",
    "so i told {PERSON_NAME} to email {EMAIL}",
    "your order {neg:ORDER} will be delivered to {STREET_ADDRESS}",
    "the total is {neg:AMOUNT} charged to {CREDIT_CARD}",
    "{PERSON_NAME} booked the room for {DATE} at {neg:TIME}",
    "i emailed {PERSON_NAME} at {EMAIL} around {neg:TIME}",
    "call {PERSON_NAME} on {PHONE} before {neg:TIME}",
    # hard negatives: no personal data
    "my order number is {neg:ORDER}",
    "the reference is {neg:ORDER}",
    "the ticket number is {neg:ORDER}",
    "the total comes to {neg:AMOUNT}",
    "that'll be {neg:AMOUNT} with tax",
    "i was charged {neg:AMOUNT} twice",
    "the meeting starts at {neg:TIME}",
    "let's meet at {neg:TIME} tomorrow",
    "we close at {neg:TIME}",
    "i need {neg:QTY} of them",
    "we sold {neg:QTY} last quarter",
    "the model number is {neg:ORDER}",
    "it costs {neg:AMOUNT} a month",
    "the flight leaves at {neg:TIME}",
    "press {neg:DIGIT} for billing",
    "option {neg:DIGIT} please",
    "room {neg:ROOM} on the third floor",
    "the invoice {neg:ORDER} is overdue",
    "i will send the bill tomorrow",
    "mark the item as delivered",
    "may i ask what this is regarding",
    "we should grant access to the whole team",
    "please jack up the priority on that",
    "the rose garden is lovely this time of year",
    "can you hear me now",
    "sorry i didn't catch that",
    "let me put you on hold for a moment",
    "is there anything else i can help with",
    "the system is down again",
    "we need to push the release to next sprint",
    "it's about {neg:QTY} minutes away",
    "the temperature was {neg:QTY} degrees",
    "we're up {neg:QTY} percent year over year",
    "the code is {neg:ORDER}",
    "can you give me {neg:AMOUNT} off",
    "i'll call you back in {neg:QTY} minutes",
    "the score was {neg:DIGIT} to {neg:DIGIT}",
    "the package weighs {neg:QTY} pounds",
    "chapter {neg:DIGIT} covers the basics",
    "the bus number {neg:ROOM} stops outside",
    "i work the night shift from {neg:TIME} to {neg:TIME}",
    "it happened around {neg:TIME} i think",
    "they said version {neg:DIGIT} point {neg:DIGIT} fixes it",
    "the washington post ran the story",
    "we use amazon web services",
    "the ford focus needs new tires",
    "i bought a jordan jersey",
    "can you turn to page {neg:ROOM}",
]


def num_words(n):
    """0..9999 as spoken English."""
    if n < 20:
        return ONES[n]
    if n < 100:
        return TENS[n // 10] + ("" if n % 10 == 0 else " " + ONES[n % 10])
    if n < 1000:
        rest = n % 100
        return ONES[n // 100] + " hundred" + ("" if rest == 0 else " " + random.choice(["", "and "]) + num_words(rest))
    if n % 1000 == 0:
        return num_words(n // 1000) + " thousand"
    if 1100 <= n < 10000 and n % 100 != 0 and random.random() < 0.6:
        return num_words(n // 100) + " " + (num_words(n % 100) if n % 100 >= 10 else "oh " + ONES[n % 100])
    rest = n % 1000
    return num_words(n // 1000) + " thousand" + ("" if rest == 0 else " " + num_words(rest))


def ordinal_words(n):
    words = num_words(n).split()
    last = words[-1]
    if last in ORDINALS:
        last = ORDINALS[last]
    elif last.endswith("y"):
        last = last[:-1] + "ieth"
    else:
        last = last + "th"
    return " ".join(words[:-1] + [last])


def ordinal_digits(n):
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def year_words(y):
    if 2000 <= y <= 2009:
        return random.choice(["two thousand", "two thousand and"]) + ("" if y == 2000 else " " + ONES[y - 2000])
    return num_words(y // 100) + " " + (num_words(y % 100) if y % 100 >= 10 else ("hundred" if y % 100 == 0 else "oh " + ONES[y % 100]))


def spoken_digits(digits, groups=None):
    """Digits spoken one by one, with 'oh', 'double'/'triple' and optional grouping."""
    out = []
    i = 0
    zero = random.choice(["zero", "oh", "oh", "o"])
    use_double = random.random() < 0.5
    while i < len(digits):
        d = digits[i]
        word = zero if d == "0" else ONES[int(d)]
        run = 1
        while i + run < len(digits) and digits[i + run] == d and run < 3:
            run += 1
        if use_double and run >= 2:
            out.append(("triple " if run == 3 else "double ") + word)
            i += run
        else:
            out.append(word)
            i += 1
    if random.random() < 0.25 and len(digits) >= 4:
        # pairs said as numbers: "twelve thirty four"
        pairs = []
        j = 0
        while j < len(digits):
            chunk = digits[j:j + 2]
            if len(chunk) == 2 and chunk[0] != "0" and random.random() < 0.6:
                pairs.append(num_words(int(chunk)))
            else:
                pairs.extend(zero if c == "0" else ONES[int(c)] for c in chunk)
            j += 2
        out = pairs
    return " ".join(out)


class Values:
    def __init__(self, seed):
        self.fakers = {loc: Faker(loc) for loc in set(LOCALES)}
        for i, f in enumerate(self.fakers.values()):
            f.seed_instance(seed + i)
        self.en = self.fakers["en_US"]

    def faker(self):
        return self.fakers[random.choice(LOCALES)]

    def person(self, spoken):
        f = self.faker()
        first, last = f.first_name(), f.last_name()
        r = random.random()
        if spoken and r < 0.08:
            # spelled out: "j o h n" or "john j o h n"
            name = first if random.random() < 0.5 else last
            letters = " ".join(c for c in name.lower() if c.isalpha())
            return letters, None
        if r < 0.3:
            name = first
        elif r < 0.45:
            name = last
        elif r < 0.55:
            name = f"{first} {f.first_name()[0]} {last}" if spoken else f"{first} {f.first_name()[0]}. {last}"
        else:
            name = f"{first} {last}"
        prefix = None
        if r >= 0.3 and random.random() < 0.12:
            prefix = random.choice(TITLES)
        if spoken and random.random() < 0.8:
            name = name.lower()
        return name, prefix

    def phone(self, spoken):
        kind = random.random()
        if kind < 0.6:
            digits = f"{random.randint(201, 989)}{random.randint(200, 999)}{random.randint(0, 9999):04d}"
            groups = [digits[:3], digits[3:6], digits[6:]]
            written = random.choice([f"{groups[0]}-{groups[1]}-{groups[2]}", f"({groups[0]}) {groups[1]}-{groups[2]}",
                                     f"{groups[0]} {groups[1]} {groups[2]}", f"+1 {groups[0]} {groups[1]} {groups[2]}",
                                     digits])
        elif kind < 0.8:
            digits = "07" + "".join(str(random.randint(0, 9)) for _ in range(9))
            groups = [digits[:5], digits[5:]]
            written = random.choice([f"{groups[0]} {groups[1]}", digits, f"+44 {digits[1:5]} {digits[5:]}"])
        else:
            n = random.choice([9, 10, 11])
            digits = "".join(str(random.randint(0, 9)) for _ in range(n))
            groups = [digits[:3], digits[3:6], digits[6:]]
            written = " ".join(groups)
        if not spoken:
            return written
        parts = [spoken_digits(g) for g in groups]
        if kind < 0.6 and random.random() < 0.15:
            parts.insert(0, "one")
        return " ".join(parts)

    def email(self, spoken):
        f = self.faker()
        first, last = (re.sub(r"[^a-z]", "", s.lower()) or "sam" for s in (f.first_name(), f.last_name()))
        r = random.random()
        sep = random.choice([".", "_", "", "-"])
        if r < 0.3:
            user = [first[0], sep, last] if sep else [first[0] + last]
        elif r < 0.6:
            user = [first, sep, last] if sep else [first + last]
        elif r < 0.8:
            user = [first, str(random.randint(1, 99))]
        else:
            user = [random.choice([first, last, self.en.user_name().replace(".", "")])]
        domain = random.choice(DOMAINS)
        tld = random.choice(TLDS)
        if not spoken:
            return "".join(user) + "@" + domain + "." + tld.replace(" dot ", ".")
        words = []
        for piece in user:
            if piece == ".":
                words.append("dot")
            elif piece == "_":
                words.append("underscore")
            elif piece == "-":
                words.append(random.choice(["dash", "hyphen"]))
            elif piece.isdigit():
                words.append(spoken_digits(piece) if random.random() < 0.5 else num_words(int(piece)))
            elif len(piece) == 1:
                words.append(piece)
            elif random.random() < 0.1:
                words.append(" ".join(piece))
            else:
                words.append(piece)
        return " ".join(words) + " at " + domain + " dot " + tld

    def card(self, spoken):
        number = self.en.credit_card_number(card_type=random.choice(["visa16", "mastercard", "amex", "discover", "visa16"]))
        if len(number) == 16:
            groups = [number[i:i + 4] for i in range(0, 16, 4)]
        elif len(number) == 15:
            groups = [number[:4], number[4:10], number[10:]]
        else:
            groups = [number]
        if not spoken:
            return random.choice([" ".join(groups), "-".join(groups), number])
        return " ".join(spoken_digits(g) for g in groups)

    def date(self, spoken):
        d = self.en.date_between(start_date="-90y", end_date="+2y")
        month = MONTHS[d.month - 1]
        r = random.random()
        if not spoken:
            return random.choice([f"{d.month:02d}/{d.day:02d}/{d.year}", f"{d.month}/{d.day}/{d.year % 100:02d}",
                                  f"{month.capitalize()} {d.day}, {d.year}", f"{d.day} {month.capitalize()} {d.year}",
                                  f"{month.capitalize()} {ordinal_digits(d.day)}", f"{d.year}-{d.month:02d}-{d.day:02d}",
                                  f"{d.day}.{d.month}.{d.year}"])
        if r < 0.35:
            return f"{month} {ordinal_words(d.day)} {year_words(d.year)}"
        if r < 0.55:
            return f"the {ordinal_words(d.day)} of {month} {year_words(d.year)}"
        if r < 0.7:
            return f"{month} {ordinal_words(d.day)}"
        if r < 0.8:
            return f"the {ordinal_words(d.day)} of {month}"
        if r < 0.9:
            return f"{spoken_digits(f'{d.month:02d}')} {spoken_digits(f'{d.day:02d}')} {year_words(d.year)}"
        return f"{month} {num_words(d.day)} {year_words(d.year)}"

    def ssn(self, spoken):
        if random.random() < 0.8:
            digits = f"{random.randint(100, 899)}{random.randint(10, 99)}{random.randint(1000, 9999)}"
            groups = [digits[:3], digits[3:5], digits[5:]]
            if not spoken:
                return random.choice(["-".join(groups), " ".join(groups), digits])
            return " ".join(spoken_digits(g) for g in groups)
        # UK national insurance: two letters, six digits, one letter
        letters = random.choice("ABCEGHJKLMNPRSTWXYZ") + random.choice("ABCEGHJKLMNPRSTWXYZ")
        digits = "".join(str(random.randint(0, 9)) for _ in range(6))
        suffix = random.choice("ABCD")
        if not spoken:
            return f"{letters} {digits[:2]} {digits[2:4]} {digits[4:]} {suffix}"
        return " ".join(letters.lower()) + " " + spoken_digits(digits) + " " + suffix.lower()

    def address(self, spoken):
        f = self.faker() if random.random() < 0.3 else self.en
        number = random.randint(1, 9999)
        street = f.street_name()
        suffix = ""
        if random.random() < 0.2:
            suffix = random.choice([" apartment ", " apt ", " unit ", " suite "]) + str(random.randint(1, 40)) + random.choice(["", "b", "c"])
        if not spoken:
            return f"{number} {street}{suffix.replace(' apt ', ' Apt. ')}"
        said = num_words(number) if random.random() < 0.6 else spoken_digits(str(number))
        text = f"{said} {street.lower()}"
        if suffix:
            m = re.match(r" (\w+) (\d+)(\w?)", suffix)
            text += f" {m.group(1)} {num_words(int(m.group(2)))}" + (f" {m.group(3)}" if m.group(3) else "")
        return text

    def city(self, spoken):
        c = random.choice(CITIES) if random.random() < 0.8 else self.en.city().lower()
        return c if spoken else c.title()

    def location(self, spoken):
        loc = random.choice(STATES + COUNTRIES)
        if not spoken:
            if loc.startswith("the "):
                return "the " + loc[4:].title() if loc not in ("the uk",) else "the UK"
            return loc.title()
        return loc

    def negative(self, kind, spoken):
        if kind == "ORDER":
            if random.random() < 0.5:
                code = "".join(str(random.randint(0, 9)) for _ in range(random.randint(5, 9)))
            else:
                code = random.choice("ABCDEFGHKLMNPRSTXYZ") + random.choice("ABCDEFGHKLMNPRSTXYZ") + "".join(str(random.randint(0, 9)) for _ in range(random.randint(4, 7)))
            if not spoken:
                return code
            return " ".join(c.lower() if c.isalpha() else spoken_digits(c) for c in code)
        if kind == "AMOUNT":
            dollars, cents = random.randint(1, 2500), random.choice([0, 0, 50, 99, random.randint(1, 99)])
            if not spoken:
                return f"${dollars}.{cents:02d}" if cents else f"${dollars}"
            return f"{num_words(dollars)} dollars" + (f" and {num_words(cents)} cents" if cents and random.random() < 0.5 else (f" {num_words(cents)}" if cents else ""))
        if kind == "TIME":
            h, m = random.randint(1, 12), random.choice([0, 15, 30, 45, random.randint(1, 59)])
            ampm = random.choice(["", " am", " pm", " in the morning", " in the afternoon"])
            if not spoken:
                return f"{h}:{m:02d}{ampm.upper() if 'm' == ampm[-1:] else ampm}"
            if m == 0:
                return f"{num_words(h)}" + random.choice([" o'clock", "", " sharp"]) + ampm
            return f"{num_words(h)} {num_words(m) if m >= 10 else 'oh ' + ONES[m]}{ampm}"
        if kind == "QTY":
            n = random.choice([random.randint(2, 20), random.randint(20, 500), random.randint(500, 9000)])
            return num_words(n) if spoken else str(n)
        if kind == "DIGIT":
            n = random.randint(1, 9)
            return ONES[n] if spoken else str(n)
        if kind == "ROOM":
            n = random.randint(10, 999)
            return (num_words(n) if random.random() < 0.5 else spoken_digits(str(n))) if spoken else str(n)
        if kind == "EXPIRY":
            m, y = random.randint(1, 12), random.randint(25, 32)
            return f"{spoken_digits(f'{m:02d}')} {num_words(y)}" if spoken else f"{m:02d}/{y}"
        if kind == "ZIP":
            z = f"{random.randint(10000, 99999)}"
            return spoken_digits(z) if spoken else z
        raise ValueError(kind)

    def value(self, label, spoken):
        return {
            "PERSON_NAME": self.person, "PHONE": self.phone, "EMAIL": self.email, "CREDIT_CARD": self.card,
            "DATE": self.date, "SSN": self.ssn, "STREET_ADDRESS": self.address, "CITY": self.city,
            "LOCATION": self.location,
        }[label](spoken)


def render(template, values, spoken):
    """Fill one template; returns (text, entities) with exact character spans."""
    pieces = []  # (text, label or None)
    for part in re.split(r"(\{[^}]+\})", template):
        if not part:
            continue
        if part.startswith("{neg:"):
            pieces.append((values.negative(part[5:-1], spoken), None))
        elif part.startswith("{"):
            label = part[1:-1]
            value = values.value(label, spoken)
            if label == "PERSON_NAME":
                value, title = value
                if title:
                    pieces.append((title if spoken else title.capitalize() + ("." if title in ("dr", "mrs", "ms") else ""), None))
                if not spoken:
                    value = " ".join(w if w[:1].isupper() else w.capitalize() for w in value.split())
            pieces.append((value, label))
        else:
            pieces.append((part.strip(), None))
    # word-level noise: fillers between words and repeated words, outside entities
    words = []  # (word, label, entity index)
    for idx, (text, label) in enumerate(pieces):
        for w in text.split():
            words.append((w, label, idx if label else None))
    noisy = []
    filler_p = 0.08 if spoken else 0.02
    for i, (w, label, idx) in enumerate(words):
        inside = idx is not None and i > 0 and words[i - 1][2] == idx
        if not inside and random.random() < filler_p:
            for f in random.choice(FILLERS).split():
                noisy.append((f, None, None))
        if spoken and not inside and label is None and random.random() < 0.03:
            noisy.append((w, None, None))  # "my my name is"
        if spoken and inside and label in ("PHONE", "CREDIT_CARD", "SSN") and random.random() < 0.03:
            noisy.append(("uh", label, idx))  # a filler inside a spoken number stays inside its span
        noisy.append((w, label, idx))
    if not spoken:
        # recogniser style: sentence case, punctuation
        first = noisy[0]
        noisy[0] = (first[0][:1].upper() + first[0][1:], first[1], first[2])
        noisy = [(("I" if w == "i" else "I'm" if w == "i'm" else "I'll" if w == "i'll" else w), l, x) for w, l, x in noisy]
    text = ""
    entities = []
    current = None
    for w, label, idx in noisy:
        if text:
            sep = " "
            if not spoken and label is None and current is None and random.random() < 0.04:
                sep = ", "
            text += sep
        start = len(text)
        text += w
        if idx is not None and current is not None and current["idx"] == idx:
            current["end"] = len(text)
        else:
            if current is not None:
                entities.append(current)
                current = None
            if idx is not None:
                current = {"start": start, "end": len(text), "label": label, "idx": idx}
    if current is not None:
        entities.append(current)
    if not spoken:
        text += random.choice([".", ".", "?", ""]) if not text.endswith("?") else ""
    for e in entities:
        del e["idx"]
    return text, entities


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="data")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--per-template", type=int, default=160, help="sentences per template (train); dev/test take a quarter")
    ap.add_argument("--spoken-share", type=float, default=0.7)
    ap.add_argument("--joined-share", type=float, default=0.2,
                    help="extra share of passages that join 2-5 sentences of one split (long context)")
    args = ap.parse_args()
    random.seed(args.seed)
    values = Values(args.seed)
    order = list(range(len(TEMPLATES)))
    random.Random(args.seed).shuffle(order)
    n = len(order)
    split_of = {}
    for rank, t in enumerate(order):
        split_of[t] = "test" if rank < n * 0.15 else "dev" if rank < n * 0.25 else "train"
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    files = {s: open(out / f"{s}.jsonl", "w", encoding="utf-8") for s in ("train", "dev", "test")}
    counts = {s: 0 for s in files}
    rows = {s: [] for s in files}
    for t, template in enumerate(TEMPLATES):
        split = split_of[t]
        reps = args.per_template if split == "train" else max(args.per_template // 4, 20)
        for _ in range(reps):
            spoken = random.random() < args.spoken_share
            text, entities = render(template, values, spoken)
            rows[split].append({"text": text, "entities": entities, "template": t,
                                "style": "spoken" if spoken else "written"})
    # passages: a few sentences of one split and one style run together, as a recogniser's
    # segment of a longer turn would
    for split, items in rows.items():
        by_style = {st: [r for r in items if r["style"] == st] for st in ("spoken", "written")}
        joined = []
        for _ in range(int(len(items) * args.joined_share)):
            style = "spoken" if random.random() < args.spoken_share else "written"
            parts = random.sample(by_style[style], random.randint(2, 5))
            text, entities = "", []
            for p in parts:
                if text:
                    text += " " if style == "spoken" else (" " if text[-1] in ".?" else ". ")
                for e in p["entities"]:
                    entities.append({"start": e["start"] + len(text), "end": e["end"] + len(text), "label": e["label"]})
                text += p["text"]
            joined.append({"text": text, "entities": entities, "template": -1, "style": style})
        items.extend(joined)
        random.shuffle(items)
        for r in items:
            for e in r["entities"]:
                assert r["text"][e["start"]:e["end"]].strip() == r["text"][e["start"]:e["end"]], r
            files[split].write(json.dumps(r, ensure_ascii=False) + "\n")
            counts[split] += 1
    for f in files.values():
        f.close()
    print(json.dumps({"templates": {s: sum(1 for t in split_of.values() if t == s) for s in files}, "sentences": counts}))


if __name__ == "__main__":
    main()
