"""Build the course's labelled PII test set: short clinic messages with every personal detail marked.

Output: data/pii/labelled_snippets.jsonl, one object per line: {"id", "text", "spans"}, each span
{"start", "end", "kind"} with kind one of phone, email, date, id, name and ``text[start:end]`` the detail.

Every snippet below was written for this course. The personal details are invented: phone numbers in the
555 exchange (555-0100 to 555-0199 is reserved for fiction) or in area codes with no assignment, the UK
and Australian ranges set aside for drama, e-mails at example.* domains, social security numbers from the
987-65-432x block reserved for advertising or with a 9xx area no SSN is ever issued with.

A detail is marked inline as ``[[kind:text]]``; the builder removes the markup and records the offsets, so
offsets cannot drift from the text. What counts as PII, and where a span starts and ends, is set out in
data/pii/README.md. Deterministic: run it twice, get the same bytes.  Run:  python data/pii/build_labelled_snippets.py
"""
from __future__ import annotations

import re
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent.parent))  # run as a script from anywhere: the repository's helpers

from helpers.jsonl import write_jsonl  # noqa: E402

OUT = HERE / "labelled_snippets.jsonl"
KINDS = ("phone", "email", "date", "id", "name")
MARK = re.compile(r"\[\[(\w+):(.+?)\]\]")

# Snippets that hold personal details, grouped by the kind they mostly exercise; many mix kinds.
WITH_PII = [
    # phone numbers: the library's valid numbers, fictional 555 numbers, unassigned area codes, every written form
    "Hi, please call me back at [[phone:(415) 555-0132]], my sore throat is worse today.",
    "My cough has lasted three weeks now. Cell is [[phone:415-555-0178]] if you need me.",
    "Can someone ring me on [[phone:415.555.0190]]? The rash on my arm is spreading.",
    "best number is [[phone:415 555 0144]], I have had a migraine since Sunday",
    "Call [[phone:555-555-1234]] for my mom, she has had diarrhea for 2 days.",
    "My home phone is [[phone:(555) 555-0100]], I feel dizzy every time I stand up.",
    "You can text me at [[phone:387-555-0142]], my ear has been ringing for a week.",
    "Please phone [[phone:(723) 555-0119]] about my blood pressure readings.",
    "my number [[phone:538.555.0176]] - lower back pain after lifting boxes",
    "Reach me at [[phone:987 555 0130]] after 5, the heartburn keeps waking me up.",
    "call back at [[phone:653-555-0105]] please, my knee gave out on the stairs",
    "The pharmacy line is busy, call me at [[phone:311-555-0123]] instead about my refill.",
    "Toll-free number they gave me was [[phone:1-800-555-0199]] but nobody answers. My eye is still red.",
    "This is about my husband's gout, call [[phone:+1 646 555 0111]].",
    "Work number [[phone:+1 (212) 555-0147 ext. 12]], ask for the front desk. Chest feels tight.",
    "I'm at [[phone:212-555-0163 x204]] during the day, the itching between my toes is driving me crazy.",
    "my phone is [[phone:555-0132]] and I have a fever of 101.5 F since last night",
    "Ph: [[phone:555 0175]]. Stomach cramps after every meal.",
    "Please call [[phone:4155550109]], I think I have a UTI again.",
    "I'm visiting from London, my mobile is [[phone:+44 20 7946 0958]]. Terrible sinus headache.",
    "UK number [[phone:07700 900123]], swollen ankle after a fall on Tuesday.",
    "My Australian mobile is [[phone:+61 491 570 006]], the cold sore came back.",
    "Contact my son on [[phone:+91 98765 43210]], my sugar readings are high.",
    "Landline [[phone:020 7946 0321]]. I have not slept properly for a month.",
    "Call [[phone:(415)555-0150]] or my wife on [[phone:(415) 555-0151]], my back is locked up.",
    "If I don't pick up, leave a message at [[phone:917-555-0143]]. Still wheezing at night.",
    "my cell [[phone:+1-415-555-0122]] - burning when I pee for 3 days",
    "Please ring [[phone:(800) 555-0100 ext 3]] at work, or my cell [[phone:646.555.0188]]. Shoulder pain.",
    "Nurse said to leave my number: [[phone:+1 415 555 0166]]. Toddler with a 102 fever and ear pain.",
    "Text only please, [[phone:415-555-0197]]. Acne flaring on my chin and jaw.",
    "Call me [[phone:1 (555) 555-0188]] regarding the hives.",
    "Phone: [[phone:+1.415.555.0129]] / constant ringing in my left ear",
    # e-mail addresses
    "Email me the lab results at [[email:jo.smith@example.com]], my ankle is still swollen.",
    "Please send the form to [[email:maria_g+clinic@example.org]]. Headaches every afternoon.",
    "My email is [[email:JOHN.DOE@EXAMPLE.NET]] and the sore throat is back.",
    "Reply to [[email:a.b-c@mail.example.co.uk]] please, I have a stye on my eyelid.",
    "email: [[email:tkowalski@example.com]]. Pain in my right wrist when I type.",
    "reach me at [[email:dana.w@example.org]] or [[phone:415-555-0101]], my heel hurts in the morning",
    "You can write to my daughter at [[email:priya.r@example.com]], she handles my appointments. "
    "I keep losing my balance.",
    "My portal login is [[email:omar1982@example.net]], can you check why my refill for the inhaler "
    "did not go through?",
    "Send it to [[email:lena.ortiz@example.com]]. Thanks. Cough for 10 days now.",
    "[[email:g.abernathy@example.org]] is best, my phone is broken. Constipated for a week.",
    "contact [[email:mr_nowicki_77@example.com]] re: my son's rash",
    "I changed my email to [[email:whitfield.dana@example.co]], please update it. Bad back again.",
    # dates: full dates in every written form; birth dates also in part
    "DOB [[date:03/14/1982]], sore throat and swollen glands since Friday.",
    "Patient born [[date:3/14/82]], complaining of lower back pain for 2 weeks.",
    "My date of birth is [[date:14-Mar-1982]] in case you need it for the chart.",
    "DOB: [[date:Mar 14 82]]. Ear infection again.",
    "I was born on [[date:March 14th, 1982]] and I have had a headache every day this week.",
    "Born on the [[date:14th of March 1982]]. My knee keeps clicking.",
    "birthdate [[date:1982-03-14]], chest congestion for 5 days",
    "Date of birth: [[date:14.03.1982]]. Itchy eyes and sneezing.",
    "DOB [[date:14/03/82]] - heavy periods for the last three months",
    "I'm calling for my father, DOB [[date:7-4-1940]], he has been confused since yesterday.",
    "My appointment on [[date:Jan. 5, 2001]] was a long time ago, the wart came back.",
    "Born [[date:5 January 2001]], I think I sprained my ankle playing football.",
    "dob [[date:Sept 9th 1975]] / heartburn most nights",
    "For the form: DOB [[date:03/14]], no allergies. Cough for 4 days.",
    "I was born in [[date:1982]] and my blood pressure was 150/95 at the pharmacy.",
    "Date of birth [[date:14 March]], year on file. Sore shoulder.",
    "My birthday is [[date:June 2nd]], can I come in before then for the rash?",
    "D.O.B. [[date:2/9/77]]; dizzy spells for 3 days",
    "She was born on the [[date:4th of July 1976]] and she is having trouble swallowing.",
    "DOB [[date:9.12.1964]], fever 38.9 C since Tuesday.",
    "born [[date:11/1990]], I get migraines around my period",
    "My mom (born [[date:Dec 3, '85]]) has had a cough for weeks.",
    "I was seen on [[date:10/31/2023]] for the same ear pain and it never cleared up.",
    "On [[date:2024-01-15]] I went to the ER with chest pain, they said it was reflux.",
    "The rash started on [[date:12/01/2023]] and it is still spreading.",
    "I fell on Monday, [[date:6 May 2024]] and my wrist still hurts.",
    "Last tetanus shot was [[date:08/22/2015]], I stepped on a nail yesterday.",
    "born in [[date:'82]], got the flu shot last week and now my arm is sore",
    "My last period was [[date:Feb 2, 2024]] and I have been nauseous every morning.",
    "DOB [[date:1/2/03]] - acne on my back that will not go away",
    "Seen in urgent care [[date:April 3rd 2024]], still have the cough.",
    "Pt DOB [[date:1964-9-12]], itchy scalp with flakes.",
    # identifiers: social security numbers with and without dashes, record and member numbers
    "SSN [[id:078-05-1120]] on file, I need a refill of my blood pressure pills.",
    "my ssn is [[id:987654320]] for the insurance form, back pain for a month",
    "Social security number is [[id:987 65 4321]]. I have a cold sore.",
    "SSN: [[id:987-65-4322]]. Migraine with flashing lights.",
    "For billing: [[id:987 65 4329]], my cough will not go away.",
    "my social is [[id:987.65.4323]] if that helps, I have shingles on my side",
    "SS# [[id:987654324]], sore knee after running",
    "The last four of my SSN are [[id:4325]], the rash on my leg is worse.",
    "MRN [[id:00482913]], follow-up for my asthma.",
    "MRN: [[id:A1234567]]. Still wheezing at night.",
    "patient ID [[id:88-21934]] - requesting my lab results",
    "My member ID is [[id:XJH48213377]], is the visit for my sinus infection covered?",
    "Insurance ID: [[id:W123456789]]. I need to see someone about my ankle.",
    "Medical record number [[id:5512093]], my son's ear infection is back.",
    "the number on my card is [[id:987654326]], I have a UTI",
    "Please use [[id:987-65-4327]] for my file, my ears are blocked with wax.",
    "Chart # [[id:30418-B]], headache and stiff neck.",
    "SSN [[id:987654328]] / DOB [[date:05/05/1955]] - shortness of breath climbing stairs",
    # names: introduced by a cue, and bare names with no cue
    "My name is [[name:Omar]] and my ear hurts when I lie on it.",
    "Hi, this is [[name:Dana Whitfield]], my knee has been swollen since the weekend.",
    "Dr. [[name:Kowalski]] said to message if the rash got worse, and it has.",
    "thanks, [[name:Lena Ortiz]] here. My cough is keeping everyone up.",
    "Name: [[name:Priya Raman]]. Burning feeling in my stomach after meals.",
    "I'm [[name:Tomasz Nowicki]], I have had a toothache and now my jaw is swollen.",
    "Can Dr [[name:Abernathy]] call me about the MRI of my back?",
    "My son [[name:Leo]] has had a fever of 102 for two days.",
    "my wife [[name:Maria]] thinks I have the flu, aches and chills since Sunday",
    "Hi [[name:Priya]], I have a sore throat again, can I get an appointment?",
    "Dizzy all week. Thanks, [[name:Tom]]",
    "Please let Dr. [[name:Nguyen]] know my blood sugar was 250 this morning.",
    "My daughter [[name:Aisha]] fell off the monkey bars and her arm is swollen.",
    "Signed, [[name:Grace Abernathy]]",
    "[[name:Maria]] has had a cough for two weeks, should she come in?",
    "[[name:Jake]] fell off his bike and his wrist is purple.",
    "Can [[name:Aisha]] come in today? She has pink eye.",
    "Message from [[name:Carlos Mendes]]: lower back pain radiating down my leg.",
    "I'm writing for [[name:Helen Park]], she is 84 and has been very confused.",
    "[[name:Ruth]] says her chest hurts when she breathes in.",
    "Ms. [[name:Okafor]] is asking about her cholesterol results.",
    "Hello, my name's [[name:Sanjay Patel]] and I have a bad sunburn with blisters.",
    "Regards, [[name:Ingrid Larsen]]",
    "I am [[name:Nadia Haddad]], I have had heavy periods for three months.",
    "My husband [[name:Ahmed]] has a nosebleed that won't stop.",
    "Dear Dr. [[name:Fischer]], the new pills make me nauseous.",
    "Pt: [[name:Wei Chen]], itchy rash on both hands",
    "It's [[name:Beth Morgan]] again, the UTI symptoms are back.",
    "Mr. [[name:Olsen]] wants to know if he should keep taking the antibiotics.",
    "Our neighbour [[name:Frank]] told me to ask about shingles, I have a stripe of blisters on my side.",
    "[[name:Kevin Brooks]] here, sprained my ankle playing soccer.",
    "Could [[name:Sofia]] get a note for school? She had a fever of 101 on Monday.",
    "My mother [[name:Rosa]] has swelling in both legs.",
    "Nurse [[name:Jenny]] told me to call if the wound drained, it is draining now.",
    "I spoke to [[name:Marcus]] at the front desk yesterday about my migraines.",
    "[[name:Emily Stone]]: heartburn every night, worse after coffee",
    # several kinds in one message
    "Hi, this is [[name:Grace Abernathy]], DOB [[date:02/11/1959]], call me at [[phone:(415) 555-0138]]. Swollen feet.",
    "Name: [[name:Omar Haddad]]. Phone [[phone:312-555-0107]]. Email [[email:omar.haddad@example.com]]. Sore throat.",
    "I'm [[name:Lena Ortiz]] (DOB [[date:04/05/1963]]), SSN [[id:987-65-4320]]. Ringing in my ears.",
    "[[name:Priya Raman]], MRN [[id:7731908]], born [[date:1990-07-21]]: the eczema on my hands is cracking.",
    "Reach me on [[phone:+1 646 555 0112]], thanks, [[name:Tomasz Nowicki]] here. Signed, [[name:Tomasz]]",
    "My son [[name:Eli]] ([[date:6/3/2019]]) has a barking cough; my cell is [[phone:415-555-0114]].",
    "For [[name:Ruth Adler]], DOB [[date:Oct 12 1938]], MRN [[id:M-0048812]]: she fell and hit her head.",
    "Text [[phone:387-555-0160]] or email [[email:kb@example.org]], took 2 x 500 mg Tylenol and the fever "
    "is still 102.",
    # written after the rules above were drafted, as a check on them
    "pls call asap [[phone:(312)555-0184]] my kid threw up 4 times",
    "Hello, I am [[name:Olga Petrova]], I need to reschedule, my number changed to [[phone:415 555 0193]].",
    "my new cell is [[phone:+1 312-555-0175]]; chest pain on and off since 2020",
    "Could you fax the note to [[phone:415-555-0120]]? It is for my employer, I was off sick for 3 days.",
    "DOB - [[date:7/4/65]]. Knee pain 6/10, worse on stairs.",
    "born [[date:22 Feb 1971]], ongoing dizziness",
    "I had the fall on [[date:3-10-2024]] and the bruise is still there.",
    "Appointment was booked for Thursday [[date:12th September 2024]] but I can't make it.",
    "Her DOB is [[date:2010-11-30]] and she has had a rash for a week.",
    "my birthday's on the [[date:9th of June]] and I want my physical before then",
    "SSN# [[id:987-65-4321]], new patient, sore throat",
    "Social: [[id:987654322]]. Fever 100.4.",
    "Member # [[id:ABX99182734]] - is physio covered?",
    "patient number [[id:1120045]], asking about my thyroid results",
    "Email [[email:rachel.m@example.org]] or call [[phone:(646) 555-0166]], bad sinus pain.",
    "send the referral to [[email:j_lee@example.com]] thx",
    "[[name:Sam Carter]] here - my son [[name:Noah]] has a barking cough.",
    "Dear Dr [[name:Alvarez]], the inhaler helps but I still wake at 3 am.",
    "My grandmother [[name:Edith]] (born [[date:1931]]) keeps falling.",
    "This is [[name:Mei Lin]] calling about my blood test from [[date:June 3, 2024]].",
    "Ask for [[name:Rob]] when you call back. Ankle is swollen.",
    "Hi, [[name:Jonas]] again. The rash is spreading to my neck.",
    "[[name:Tariq Aziz]], [[phone:555-0147]], gout flare in my big toe",
    "It's my husband [[name:Pete]], he has had hiccups for 2 days.",
    "Sincerely, [[name:Margaret O'Neill]]",
]

# Snippets with no personal detail: the numbers and capitalised words a scrubber must leave alone.
WITHOUT_PII = [
    # durations and histories
    "I've had a sore throat for 3 days and it hurts to swallow.",
    "Lower back pain since 2019, worse in the last two weeks.",
    "My knee has been swollen for 2-3 weeks after a fall.",
    "Migraines since I was 12, now they come 3-4 times a week.",
    "Cough for 10 days, getting worse at night.",
    "I have had diarrhea on and off for 6 months.",
    "Been constipated for 4 days, last time this happened was in 2021.",
    "Since March my hands go numb at night.",
    "The rash started around March 3rd and keeps spreading.",
    "Back in May 2019 I had the same ear infection.",
    "Had covid in Jan 2022 and I still get short of breath.",
    "I have been feeling down for about 6-8 weeks.",
    "Heartburn every night for the past 1-2 months.",
    "The itch started 48 hours ago, right after hiking.",
    "I haven't slept more than 4 hours a night since 2020.",
    "My ankle has been weak ever since the 2018 sprain.",
    "Ringing in my ears for 5 years, louder in the last 6 weeks.",
    "In 2015 I had my gallbladder out and now the pain is back on the right side.",
    "Symptoms started the week of the 4th and haven't let up.",
    "I get dizzy 2 or 3 times a day, each time for 10-15 seconds.",
    "My period is 10 days late and I feel sick in the mornings.",
    "Pain in my heel for the past 12 months, worst first thing in the morning.",
    # doses and medicines
    "Took 2 x 500 mg of paracetamol and the headache is still there.",
    "I take Lisinopril 20 mg once a day and my ankles are swelling.",
    "Tylenol 325 mg every 4-6 hours isn't touching the pain.",
    "Is it OK to take 400 mg ibuprofen with my Lipitor 40mg?",
    "I take vitamin D 1000-2000 IU a day, is that why I feel nauseous?",
    "I took 1/2 a tablet of the 0.5 mg and still felt drowsy.",
    "Using the inhaler 2 puffs every 4 hours and still wheezing.",
    "My son weighs 22 kg, how much of the 100 mg/5 ml syrup should I give him?",
    "Metformin 500mg twice daily gives me diarrhea.",
    "The 24-hour allergy pill stopped working after a week.",
    "Amoxicillin 875 mg for 10 days, rash appeared on day 7.",
    "Took 2 Advil at 10:30 and 2 more at 2:45 pm, the toothache is back.",
    "I'm on 12.5 mg of hydrochlorothiazide and keep getting leg cramps.",
    # vitals and lab values
    "My blood pressure was 140/90 this morning and 150/95 at night.",
    "Fever of 101.5 F since last night and chills.",
    "Temperature 38.9 C, pulse 112, feel awful.",
    "My A1c was 7.2 and fasting sugar is around 180.",
    "Oxygen was 94% on the pulse oximeter after walking.",
    "Cholesterol came back 240 with LDL 160.",
    "My INR was 3.4 last week, should I change the dose?",
    "Heart rate jumps to 150 bpm when I climb stairs.",
    "BP 132/84, HR 76, but I still get headaches.",
    "Glucose 250 at 3 am, then 95 at 7 am.",
    "I weigh 185 lbs and lost 15 lbs in 2 months without trying.",
    "I'm 5'10\" and 210 pounds, my knees hurt all the time.",
    "Platelets were 450,000 on the last blood test.",
    "My viral load was 1,200,000 copies at diagnosis.",
    "Peak flow dropped from 450 to 300 this week.",
    "Vision was 20/20 last year, now everything is blurry.",
    "TSH 6.8, is that why I'm so tired?",
    "Walked 10,000 steps and my shin is killing me.",
    "Eye pressure was 24 in the left eye.",
    # codes, ages, rooms, times, counts
    "Last visit they coded it M54.50, is that still right for my back?",
    "The discharge paper says J06.9 and R05.9.",
    "Code I10 on my chart, but my pressure is normal now.",
    "They wrote E11.9 and K21.9 on the referral.",
    "My 3 year old has a barking cough at night.",
    "I'm 67 and my hip hurts when I walk more than a block.",
    "My son is 4 and has had a fever of 102 for 3 days.",
    "She's 15 months old and pulling at her left ear.",
    "I was in room 214 last week and the IV site is still red.",
    "Bed 12B on ward 4 had the same cough as me.",
    "Appointment at 3:15 on Tuesday, can I move it?",
    "The pain wakes me at 2 am every night.",
    "I work 12-hour shifts, 3 nights a week, and my feet are swollen.",
    "I had 3 glasses of wine and woke up with a red hot big toe.",
    "Pain is 7/10 most days, 9/10 at night.",
    "Type 2 diabetic for 10 years, now my feet tingle.",
    "Stage 3 kidney disease, my ankles are swollen again.",
    "I work 9-5 at a desk and my neck is stiff.",
    "Three out of 4 fingers are numb on my right hand.",
    "Gained 20 pounds since the 1990s, now the knee is bad.",
    "Call me back about the cough, I'm free after 4.",
    "My phone died so I'm writing here: the rash is worse.",
    "Please email me the results, the cough is better.",
    "I tried calling the clinic 5 times today.",
    "Room 1204 at the hospital had a broken call button, anyway my stitches itch.",
    "Ward 7 nurses said to drink 2-3 litres of water a day.",
    "Flight 1234 landed late and my ankles are huge.",
    "Question about invoice 2024 and my ear pain.",
    "Twenty-four hours of vomiting, can't keep water down.",
    # capitalised words that are not names
    "I'm Not sure if this is an emergency, my chest feels tight.",
    "This is Monday's reading: 180 over 100.",
    "I'm Type 2 and my sugar is high.",
    "My Apple Watch says my heart rate is 48 at night.",
    "Is Tylenol or Advil better for a sprained wrist?",
    "I think I have Lyme disease, there is a bullseye rash on my leg.",
    "Could this be Bell's palsy? One side of my face droops.",
    "My mom has Parkinson's and she is falling more.",
    "Crohn's flare again, pain in my lower right belly.",
    "I went to Urgent Care on Saturday and they said it was a virus.",
    "Walgreens said my prescription needs a new authorization.",
    "Christmas dinner gave me the worst heartburn.",
    "I'm Diabetic and have a cut on my foot that won't heal.",
    "Hi there, I have an ingrown toenail that is infected.",
    "Dear Doctor, my cough is worse at night.",
    "Thanks, the new cream is helping.",
    "Hello, I have a question about my Covid booster.",
    "Mom says I had chickenpox as a kid, can I still get shingles?",
    "It's Tuesday and the fever still hasn't broken.",
    "I'm Allergic to penicillin, what can I take for strep?",
    "My ENT said to try the Neti pot.",
    "Is the MRI of my L4-L5 back yet?",
    "I have Hashimoto's and feel cold all the time.",
    "Took my son to the ER at St. Mary's, they said croup.",
    "The Omicron variant went through our whole house.",
    "My Fitbit shows I sleep 5 hours a night.",
    # written after the rules above were drafted, as a check on them
    "kid threw up 4 times since 6 pm, should we come in?",
    "Chest pain on and off since 2020, worse in the last 2 months.",
    "Knee pain 6/10 on the stairs, 2/10 at rest.",
    "BP was 160/100 twice this week, I take amlodipine 5 mg.",
    "Fever 100.4 for 36 hours, took 650 mg acetaminophen at 8:15.",
    "The rash covers about 10 x 15 cm on my back.",
    "Ran a 10K on Sunday and now my left calf is tight.",
    "I drink 3-4 cups of coffee a day and get palpitations.",
    "Seen in clinic 2 weeks ago, code R10.9, still have the belly pain.",
    "Blood sugar 65 at 4:30 am, felt shaky.",
    "Ferritin 12, hemoglobin 10.8, I feel exhausted.",
    "I'm 34 weeks pregnant and my feet are very swollen.",
    "My 18 month old has had 6 wet diapers in 24 hours, is that enough?",
    "Took 1 Benadryl 25 mg, hives are still there after 2 hours.",
    "Smoked 1 pack a day for 20 years, quit in 2016, now this cough.",
    "The pain started in the 2nd week of January.",
    "Room 3B at the clinic was too cold, my asthma flared.",
    "I tested positive on 2 home tests, fever 38.4.",
    "Sleeping 3-5 hours a night since the summer.",
    "My dose went from 50 to 75 mcg and now my heart races.",
    "Pulse ox 91-93% when I walk, 97% at rest.",
    "Spirometry said FEV1 68% last year.",
    "Hi, I'd like to know if Medicare covers the flu shot.",
    "Thanks for the call back, the dizziness is gone.",
    "Is 1 in 1000 the risk for a blood clot on the pill?",
]


def parse(marked: str) -> tuple[str, list[dict]]:
    """The snippet without markup, and its spans as character offsets."""
    text, spans, pos = "", [], 0
    for match in MARK.finditer(marked):
        kind, value = match.group(1), match.group(2)
        if kind not in KINDS:
            raise ValueError(f"unknown kind {kind!r} in {marked!r}")
        text += marked[pos:match.start()]
        spans.append({"start": len(text), "end": len(text) + len(value), "kind": kind})
        text += value
        pos = match.end()
    text += marked[pos:]
    if "[[" in text or "]]" in text:
        raise ValueError(f"unbalanced markup in {marked!r}")
    return text, spans


def build() -> list[dict]:
    rows = []
    for number, marked in enumerate(WITH_PII + WITHOUT_PII, start=1):
        text, spans = parse(marked)
        rows.append({"id": f"pii-{number:03d}", "text": text, "spans": spans})
    texts = [row["text"] for row in rows]
    assert len(set(texts)) == len(texts), "every snippet is written once"
    return rows


def main() -> None:
    rows = build()
    write_jsonl(rows, OUT)
    with_pii = sum(1 for row in rows if row["spans"])
    print(f"wrote {len(rows)} snippets ({with_pii} with PII, {len(rows) - with_pii} without) to {OUT.name}")


if __name__ == "__main__":
    main()
