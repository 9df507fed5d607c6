"""Build the course's first toy dataset: conversational complaints -> ICD-10-CM codes.

Every complaint sentence below was written by hand for this fine-tuning course.
None of it is copied from another source and none of it describes a real person.

Each code has exactly 10 complaints. Each complaint is wrapped in one of the
instruction templates (assigned round robin, so the output is deterministic),
and the target response is "DIAGNOSIS_CODE: <code>".

Run:  python3 data/build_icd10_complaints.py
"""

import json
from pathlib import Path

OUT_PATH = Path(__file__).resolve().parent / "icd10_complaints.jsonl"

TEMPLATES = [
    "Convert the following conversational medical complaint into standard diagnostic code: '{complaint}'",
    "What is the ICD-10-CM code for this complaint: {complaint}",
    'Patient says: "{complaint}" Give the diagnosis code.',
    "Map this patient statement to a single ICD-10-CM diagnosis code.\nStatement: {complaint}",
    "A patient at the clinic reports the following. Which ICD-10-CM code fits best?\n{complaint}",
    "Assign the most appropriate ICD-10-CM code to this complaint: {complaint}",
    "Read the complaint below and reply with its ICD-10-CM code.\nComplaint: {complaint}",
    "Triage note, in the patient's own words: {complaint}\nWhat diagnosis code should be recorded?",
]

COMPLAINTS = {
    # Common cold / acute upper respiratory infection
    "J06.9": [
        "I've got a runny nose, I keep sneezing and my throat is a bit scratchy, feels like a regular cold.",
        "Just a head cold I think, stuffy nose and sneezing for three days.",
        "my daughter caught a cold at daycare, snotty nose and a little cough",
        "Cold symptoms since the weekend: congestion, sneezing, a mild sore throat. Nothing major, it's just annoying.",
        "I think I caught the cold that's going around the office, my nose is running nonstop and I feel kind of blah.",
        "Stuffy nose, sneezy, slight cough, and the whole family has had this same cold this week.",
        "Got a cold off my kids, nose is blocked up.",
        "Runny nose and a tickly throat, pretty sure it's just the common cold.",
        "My husband has had a cold for four days now, congested, sneezing, bit of a sore throat, no fever, and honestly he's acting like it's the end of the world.",
        "upper respiratory thing, nose runing, sneezing, little cough, caught it on the plane",
    ],
    # Acute pharyngitis / sore throat
    "J02.9": [
        "My throat really hurts when I swallow.",
        "Sore throat for two days, it feels raw and scratchy, especially first thing in the morning.",
        "It hurts to swallow even water and the back of my throat looks red when I check it in the mirror.",
        "my son says his throat is sore and he doesn't want to eat anything",
        "Throat pain, worse when swallowing.",
        "I woke up with a really painful throat, like swallowing broken glass, but no runny nose and no cough.",
        "My throat has been sore and burning since the day before yesterday.",
        "Can barely swallow, my throat is so sore and swollen at the back.",
        "sore throught that wont go away, hurts worse at night",
        "I'm a teacher and by the end of every day my throat is really sore and red, and now it hurts to swallow all the time.",
    ],
    # Acute sinusitis
    "J01.90": [
        "I have pressure behind my cheeks and forehead and thick green stuff coming out of my nose.",
        "Sinus infection again, my face hurts when I bend over and my nose is blocked with yellow mucus.",
        "My sinuses are killing me, pain around my eyes and cheekbones, and even my upper teeth ache.",
        "For the past ten days I've had facial pain, congestion and thick discolored drainage, I'm fairly sure my sinuses are infected.",
        "Sinus pressure and green snot for over a week.",
        "My wife's nose is stuffed up, her cheeks feel swollen and tender, and she has thick mucus dripping down the back of her throat.",
        "Pain across my forehead and cheeks, stuffy nose, and everything I blow out is thick and green.",
        "i think its a sinus infection, cheeks are tender and I cant breathe through my nose",
        "Acute sinus trouble: facial pain, pressure when I lean forward, and a completely blocked nose.",
        "After my cold, my sinuses got blocked and now my cheekbones ache and the discharge is thick and yellow.",
    ],
    # Acute bronchitis
    "J20.9": [
        "I've got a chest cold, I'm coughing up yellow phlegm and my chest feels tight.",
        "A cough with lots of mucus for about a week after a cold, and my chest feels heavy and congested.",
        "Last time the doctor called it bronchitis and this feels exactly the same, a deep wet cough bringing up mucus.",
        "Wet hacking cough with green phlegm and my chest rattles.",
        "My dad has had a productive cough and a rattly chest for five days, it started after a cold.",
        "Chest congestion and a cough that brings up thick mucus, it began as a cold and then moved down into my chest.",
        "think i have bronchitis, coughing up gunk all day and my chest feels heavy",
        "Chesty cough with phlegm that started a few days after I had a head cold.",
        "The cold went to my chest. Now I'm coughing up phlegm constantly and my chest sounds crackly when I breathe.",
        "So this started as a normal cold about ten days ago, but now it's a deep chesty cough that brings up mucus every time, and my chest feels congested and sore from all the hacking.",
    ],
    # Cough, unspecified
    "R05.9": [
        "I've had a dry cough for two weeks.",
        "I keep coughing, especially at night, but nothing comes up.",
        "My son won't stop coughing, it's a dry tickly cough and he's otherwise fine.",
        "Coughing a lot lately, that's it.",
        "Annoying cough that just won't quit, no fever, no phlegm, and I feel fine otherwise.",
        "I have this cough that comes in fits and I honestly can't tell what sets it off.",
        "There's a constant tickle that makes me cough all day, it's driving my coworkers crazy.",
        "coff for a few weeks now, dry, no other symptoms",
        "My mother has been coughing on and off for a while, it's a dry cough and she says she feels okay apart from that.",
        "Just here about my cough. It keeps coming and going and I'd like someone to look into it.",
    ],
    # Fever, unspecified
    "R50.9": [
        "I've had a fever of 101 since last night.",
        "My daughter is burning up, the thermometer said 102.",
        "I keep running a temperature with chills, but no other symptoms really.",
        "Fever on and off for three days, I feel hot and then I'm shivering.",
        "Feverish and sweaty all night.",
        "My toddler has a high temperature and is cranky, but there's nothing else I can see wrong with her.",
        "My temp was 38.9 this morning and I feel hot all over.",
        "ive had a fever that keeps coming back every evening",
        "Running a low-grade fever for a couple of days now and I can't figure out why.",
        "My husband's temperature keeps spiking up to 39, it drops when he takes paracetamol, then a few hours later it's right back up again and he's been like this since the weekend.",
    ],
    # Headache, unspecified
    "R51.9": [
        "I have a headache that won't go away.",
        "My head has been hurting for a few days, a dull ache all over.",
        "Headache every afternoon, like a tight band squeezing around my forehead.",
        "My head hurts so bad today.",
        "I've been getting headaches a lot more often lately and painkillers barely touch them.",
        "Dull pounding headache since I woke up, no nausea, light doesn't bother me, it just aches.",
        "My teenage son keeps complaining of headaches when he gets home from school.",
        "headach at the back of my head for two days",
        "Is it normal to have a headache this long? It's been three days of constant pressure in my head and I'm starting to get worried about it.",
        "Pressure-type headache on both sides of my head that comes and goes through the day.",
    ],
    # Migraine, unspecified
    "G43.909": [
        "I get migraines, throbbing on one side, and I have to lie down in a dark room until they pass.",
        "My migraine is back, I saw zigzag lights before it started and now bright light really hurts.",
        "Migraine attacks a couple of times a month, pounding pain behind one eye and sound makes it worse.",
        "i think these are migraines not normal headaches, one side throbs and i cant stand any light",
        "My wife has had migraines since she was a teenager and they're getting worse.",
        "Another migraine, flashing lights first and then a horrible pulsing pain on the left side.",
        "I need something stronger for my migraines.",
        "Severe one-sided throbbing head pain with light and sound sensitivity, same as my usual migraines.",
        "migrane again, had to stay in the dark for hours",
        "Every few weeks I get these crushing migraines, first there are blurry shimmering spots in my vision, then the pain hits and I'm out of action for the rest of the day.",
    ],
    # Low back pain, unspecified
    "M54.50": [
        "My lower back hurts when I bend over.",
        "Low back pain for a week since I moved furniture, nothing going down my legs.",
        "My lower back is so stiff in the mornings I can barely get out of bed.",
        "Lower back aching all the time.",
        "I sit at a desk all day and by evening my lower back is constantly sore.",
        "My dad hurt his lower back gardening and now he's walking around hunched over.",
        "Sharp ache right across the small of my back, worse when I stand up from a chair.",
        "back pain, the low part, just above my belt line",
        "lower back pain for months, comes and goes, worse after lifing anything",
        "I've got a nagging ache down in my lumbar area that won't settle, and it's been weeks now, I've tried heat packs and stretching and nothing really makes a difference.",
    ],
    # Cervicalgia / neck pain
    "M54.2": [
        "My neck hurts and I can't turn my head to the left.",
        "Stiff, sore neck since I fell asleep funny on the couch.",
        "Neck pain from looking down at my laptop all day.",
        "My neck is absolutely killing me.",
        "Pain in the back of my neck that gets worse whenever I look up.",
        "My husband's neck has been stiff and achy for a week, he can barely turn to check his blind spot when he drives.",
        "I have a crick in my neck that won't go away.",
        "Aching neck and stiffness, no injury, I just woke up like this.",
        "nek pain on both sides, hurts when i turn my head",
        "Constant dull ache in my neck, I keep rubbing it and stretching it but nothing helps.",
    ],
    # Pain in right knee
    "M25.561": [
        "My right knee hurts when I go down stairs.",
        "Pain in my right knee for about a month, no injury I can remember.",
        "Right knee aches after I go running.",
        "I can't kneel anymore, my right knee is too painful.",
        "My mom's right knee has been hurting her, especially when she gets up from a chair.",
        "Sharp pain on the inside of my right knee when I squat.",
        "It's my right knee, it hurts all the time now, even at night.",
        "rite knee pain when walking long distances",
        "The left knee is fine, but the right one aches and feels sore around the kneecap.",
        "My right knee has been sore ever since I started cycling to work, there's no swelling and I never twisted it, it just aches during and after the ride.",
    ],
    # Pain in right shoulder
    "M25.511": [
        "My right shoulder hurts when I lift my arm.",
        "Pain in my right shoulder, I can't reach the top shelf anymore.",
        "right shoulder aches at night, can't sleep on that side",
        "I've had right shoulder pain for weeks, no fall or injury.",
        "My right shoulder is sore after painting the ceiling all weekend.",
        "It hurts in my right shoulder when I put my jacket on.",
        "My son plays baseball and now his right shoulder hurts when he throws.",
        "Dull ache in the right shoulder that sometimes spreads into my upper arm.",
        "Shoulder pain, right side, worse reaching behind my back.",
        "my rigth shoulder has been painful for about a month",
    ],
    # Abdominal pain, unspecified
    "R10.9": [
        "My stomach has been hurting all day.",
        "I have belly pain that comes and goes and I can't pin down exactly where it is.",
        "My son keeps saying his tummy hurts but he has no other symptoms.",
        "Abdominal pain for two days now.",
        "Crampy pain in my belly, no vomiting, no diarrhea, just pain.",
        "I've had a pain in my abdomen that's been bugging me since yesterday.",
        "Tummy ache on and off for a week, as far as I can tell it's not related to eating.",
        "my stomack hurts really bad",
        "There's a sore, achy feeling across my whole stomach area.",
        "My grandmother is complaining about pain in her belly, she can't say where it's worst and she doesn't have any other symptoms, she just keeps holding her tummy.",
    ],
    # Nausea with vomiting
    "R11.2": [
        "I feel sick to my stomach and I've thrown up three times.",
        "Nauseous all morning and then I vomited twice.",
        "My daughter feels queasy and keeps throwing up.",
        "Nausea and vomiting since last night.",
        "I can't keep anything down, I feel nauseated and I keep vomiting.",
        "Feeling really queasy and I've puked a few times today.",
        "Woke up nauseous, then threw up both breakfast and lunch.",
        "My husband has been nauseated and vomiting since dinner yesterday.",
        "sick feeling in my stomach and vomitting, cant even keep water down",
        "Constant waves of nausea, and every couple of hours it ends with me throwing up, I haven't been able to eat properly since yesterday.",
    ],
    # Vomiting, unspecified
    "R11.10": [
        "I keep throwing up all day.",
        "I vomited several times last night.",
        "My toddler vomited twice this morning.",
        "Vomiting since this afternoon, five times now.",
        "I've thrown up four times today.",
        "My son threw up in the car and then again once we got home.",
        "Been vomiting on and off since yesterday.",
        "I vomited after every meal today.",
        "threw up a few times overnite",
        "My mother has been vomiting since this morning.",
    ],
    # GERD without esophagitis / heartburn, reflux
    "K21.9": [
        "I get heartburn after almost every meal.",
        "Burning heartburn after I eat, worse when I lie down, and a sour taste in my mouth.",
        "Acid reflux, a sour taste coming up into my throat at night.",
        "My food keeps coming back up with a bitter acid taste.",
        "Heartburn so bad I'm going through antacids like candy.",
        "My dad has acid reflux and it's gotten worse lately.",
        "After spicy food or coffee I get this acid burning that rises up into my throat.",
        "hartburn every night after dinner",
        "I have reflux, acid comes up whenever I bend over or lie flat.",
        "Burning acid feeling that creeps up from my stomach into my throat after meals, antacids help for a bit but it keeps coming back every day.",
    ],
    # Constipation, unspecified
    "K59.00": [
        "I haven't had a bowel movement in four days.",
        "I'm constipated, hard stools and lots of straining.",
        "My son only poops every few days and it hurts him when he goes.",
        "Constipation for about a week now.",
        "I feel blocked up, I go maybe twice a week and it's really hard to pass.",
        "Can't poop, been like this ever since I started traveling.",
        "My bowel movements are hard and lumpy and I have to strain a lot.",
        "constipated agian, nothing is helping",
        "My elderly mother is constipated and very uncomfortable.",
        "I never feel like I fully empty my bowels, I only manage to go every few days, and when I do it's hard and takes forever.",
    ],
    # Diarrhea, unspecified
    "R19.7": [
        "I've had diarrhea since yesterday.",
        "Loose watery stools, I'm running to the toilet every hour.",
        "My daughter has the runs, but no vomiting.",
        "Diarrhea for three days straight.",
        "Runny poop several times a day for a couple of days now.",
        "I can't leave the house, I keep having diarrhea.",
        "Watery bowel movements ever since I got back from my trip.",
        "diarrea on and off all week",
        "My husband has had loose stools all day, no fever.",
        "Everything I eat goes right through me, it's watery and urgent and I've been back and forth to the bathroom so many times today I've lost count.",
    ],
    # Urinary tract infection, site not specified
    "N39.0": [
        "I think I have a UTI again.",
        "I keep needing to pee and my urine is cloudy and smells strong, I think it's a bladder infection.",
        "Pretty sure it's a urinary tract infection, I've had them before and this feels the same.",
        "Bladder infection symptoms, peeing all the time, pressure low in my belly.",
        "My mom's urine is cloudy and smelly and she's going constantly, the nurse at her home thinks it's a UTI.",
        "Frequent urination, urgency, and a bit of blood in my pee, it feels like my usual urine infection.",
        "Urine infection again, I think I need antibiotics.",
        "I'm going to the bathroom every twenty minutes and my pee smells bad, UTI I'm guessing.",
        "My home urine test strip came back positive for infection and I have urgency and frequency.",
        "uti symtoms again, urgency and cloudy pee",
    ],
    # Dysuria
    "R30.0": [
        "It burns when I pee.",
        "Painful urination for two days.",
        "Stinging when I urinate, nothing else.",
        "My son says it hurts when he pees.",
        "Burning sensation while peeing today.",
        "It really stings right at the end of urinating.",
        "Peeing is painful, there's a burning feeling every single time I go.",
        "it burns wen i pee, started yesterday",
        "Discomfort and burning when passing urine.",
        "My husband says it hurts and burns when he urinates.",
    ],
    # Essential (primary) hypertension
    "I10": [
        "My blood pressure has been high on the pharmacy machine.",
        "I have high blood pressure and need a refill of my pills.",
        "My home BP readings are around 150 over 95.",
        "Here for my hypertension follow-up.",
        "The nurse at work checked my blood pressure three times and it was high every time.",
        "My dad's blood pressure is always high, even on his medicine.",
        "high blood presure, checking in about my meds",
        "I was recently told I have hypertension and I want to talk about treatment.",
        "My BP keeps reading high, like 160 over 100.",
        "I'm just coming in to get my blood pressure checked again, it's been running high for a while now and I want to make sure the tablets are actually doing their job.",
    ],
    # Type 2 diabetes mellitus without complications
    "E11.9": [
        "I have type 2 diabetes and I'm here for my regular check.",
        "My sugars have been running high, around 200 in the mornings. I'm type 2.",
        "Type 2 diabetic, I need my metformin refilled.",
        "Diabetes follow-up visit, type 2.",
        "My dad has type 2 diabetes and his glucose readings have been up lately.",
        "I was diagnosed with type 2 diabetes last year and want to go over my numbers.",
        "Blood sugar readings high all week, I'm a type 2 diabetic with no other problems.",
        "type 2 diabeties, need my A1C checked",
        "My A1C was high last time, I'm managing my type 2 diabetes with diet and pills.",
        "Type two diabetes, no complications so far, I'm here to go over my sugar log.",
    ],
    # Hyperlipidemia, unspecified
    "E78.5": [
        "My cholesterol came back high on my blood test.",
        "I have high cholesterol and want to talk about statins.",
        "My lipid panel showed high LDL and high triglycerides.",
        "Here for my high cholesterol follow-up.",
        "My doctor said my cholesterol numbers are too high.",
        "My husband's cholesterol is high, and he wants to know what diet changes would help.",
        "my cholestrol is high again, need a refill",
        "Blood work showed my lipids are elevated.",
        "I've had high cholesterol for years, just checking in on it.",
        "The fats in my blood were high on the last test, the lipid thing, and my work health screening flagged it too so I figured I should finally deal with it.",
    ],
    # Generalized anxiety disorder
    "F41.1": [
        "I worry about everything all the time and I can't switch it off.",
        "Constant anxiety for months, about work, money, my kids, everything.",
        "I feel on edge every single day, my muscles are tense and I can't relax.",
        "Always anxious, nonstop worrying about everything.",
        "My wife worries about everything, every day, and it wears her out.",
        "I've been anxious pretty much every day for over half a year.",
        "My mind keeps racing with worries about all sorts of things and I can't control it.",
        "anxius all the time, restless and irritable",
        "I'm nervous about everything even when nothing is actually wrong.",
        "For a long time now I've had this excessive worry about lots of different things, most days, it's not one specific fear, it's just a constant background dread that never lets up.",
    ],
    # Depression, unspecified
    "F32.A": [
        "I've been feeling down and hopeless for weeks.",
        "Nothing makes me happy anymore, I just feel empty.",
        "I think I'm depressed, I've lost interest in everything.",
        "I have been feeling really depressed lately.",
        "My son has been withdrawn and sad for a month, he doesn't enjoy anything anymore.",
        "I cry a lot and feel worthless most days.",
        "Low mood, no motivation, I don't want to see anyone.",
        "been feeling realy low and flat for a while",
        "I feel sad all the time and can't enjoy the things I used to.",
        "My husband seems depressed, he's stopped doing the things he used to love, he barely talks to us, and he just sits in front of the TV looking miserable.",
    ],
    # Insomnia, unspecified
    "G47.00": [
        "I can't fall asleep at night.",
        "I wake up at 3 every night and can't get back to sleep.",
        "Trouble sleeping for weeks, I lie awake for hours.",
        "Insomnia, I just can't sleep.",
        "My mom says she hasn't slept properly in a month.",
        "I only get about three hours of sleep a night.",
        "I toss and turn all night and can't stay asleep.",
        "cant sleep at all lately",
        "Sleeping has become impossible, I lie in bed for hours wide awake and when I finally drop off I'm up again a couple of hours later.",
        "I've had insomnia for a while and it's getting worse.",
    ],
    # Dizziness and giddiness
    "R42": [
        "I feel dizzy when I stand up.",
        "The room feels like it's spinning around me.",
        "I've been lightheaded and dizzy all day.",
        "Having dizzy spells this week.",
        "My grandma gets dizzy whenever she turns her head quickly.",
        "Everything spins when I get out of bed.",
        "I feel off balance and woozy.",
        "dizzyness that comes and goes",
        "Feeling lightheaded, like I might lose my balance.",
        "My son says he feels dizzy after school, like the floor is moving under him, and he has to sit down until it passes.",
    ],
    # Other fatigue
    "R53.83": [
        "I'm tired all the time, even after a full night's sleep.",
        "No energy lately, I'm exhausted by midday.",
        "I feel worn out constantly.",
        "Fatigue for weeks now, no idea why.",
        "My wife is always tired and has no energy.",
        "I drag myself through the day, totally wiped out.",
        "Exhausted all the time and I don't know why.",
        "so tired all the tim, no energy",
        "Feeling run down and fatigued for a month.",
        "My teenage daughter seems constantly worn out, she has no energy for school, sports or her friends, and it's been like that for weeks.",
    ],
    # Shortness of breath
    "R06.02": [
        "I get short of breath walking up the stairs.",
        "I can't catch my breath.",
        "Feeling breathless doing simple things.",
        "Shortness of breath lately, even walking slowly.",
        "My dad gets winded after just a few steps.",
        "I'm out of breath all the time lately.",
        "Short of breath even when I'm resting.",
        "hard to breath, getting winded real easy",
        "I feel like I can't get enough air in.",
        "My breathing gets labored when I walk even a short distance, I have to stop halfway to the mailbox to get my breath back, which never used to happen.",
    ],
    # Chest pain, unspecified
    "R07.9": [
        "I have chest pain right now.",
        "My chest hurts and I don't know why.",
        "Pain in my chest that comes and goes.",
        "Chest pain since this morning.",
        "My husband is complaining of chest pain.",
        "Something hurts in my chest but I can't really describe it.",
        "Sharp pain in the middle of my chest.",
        "chest pian, not sure what it is",
        "I've got a pain in the chest area.",
        "My mother has been having chest pain on and off for a few days, it isn't related to eating and she hasn't hurt herself, she just says her chest hurts.",
    ],
    # Urticaria, unspecified
    "L50.9": [
        "I broke out in hives after eating something.",
        "Raised itchy welts all over my body.",
        "My son has hives on his arms and legs.",
        "Hives for two days now.",
        "Itchy raised bumps that appear and then disappear within hours.",
        "I keep getting hives and can't figure out why.",
        "Red raised welts on my skin that itch like crazy.",
        "hives agian, itchy welts all over",
        "My wife has hives on her neck and chest.",
        "Blotchy raised welts keep popping up on different parts of my body, they're incredibly itchy, fade after a few hours and then show up somewhere else.",
    ],
    # Dermatitis, unspecified
    "L30.9": [
        "I have dry, itchy, red patches on my hands.",
        "My skin is scaly and itchy in spots.",
        "Itchy inflamed skin on the backs of my knees.",
        "My eczema is flaring up again.",
        "My baby has red, rough, itchy patches on his cheeks.",
        "Dry cracked skin patches that itch a lot.",
        "Patches of irritated skin on my elbows that flake.",
        "ecxema on my arms again",
        "My skin gets red, itchy and weepy in patches.",
        "I've got this dermatitis on my neck, the skin is dry, red and itchy in a couple of patches, and scratching only makes it worse.",
    ],
    # Tinea pedis
    "B35.3": [
        "The skin between my toes is itchy and peeling.",
        "I think I have athlete's foot.",
        "My feet itch and the skin is cracking between my toes.",
        "Athlete's foot again, same as last summer.",
        "My son has a fungal rash on his feet from the gym showers.",
        "Burning, itchy feet with white peeling skin between the toes.",
        "Foot fungus that won't go away.",
        "atheletes foot again after the swimming pool",
        "The soles of my feet are scaly and itchy, like a fungus.",
        "Smelly, itchy feet with cracked soggy skin between the toes, I play a lot of football and I'm always in sweaty socks.",
    ],
    # Conjunctivitis, unspecified
    "H10.9": [
        "My eye is red and crusty in the morning.",
        "I think I have pink eye.",
        "My daughter's eyes are red and goopy.",
        "Pink eye, both eyes now.",
        "My eye is red, gritty and watering.",
        "I woke up with my eyelids stuck together with gunk.",
        "Both eyes are red and gritty.",
        "conjuctivitis I think, eye is red",
        "My eye has yellow discharge and the white part is red.",
        "Red irritated eye with sticky discharge that started in one eye and now it's spread to the other, and my kid had the same thing last week.",
    ],
    # Otitis media, unspecified
    "H66.90": [
        "I think I have an ear infection.",
        "My son keeps pulling at his ear and has a fever, last time that was an ear infection.",
        "Ear infection again, it's painful and my hearing is muffled.",
        "Another ear infection, I'm sure of it.",
        "My daughter's ear looks infected.",
        "Pain and fluid behind my eardrum, feels like an infection.",
        "Middle ear infection I think.",
        "ear infecton again, same side",
        "My ear hurts and feels full after a cold, I think it's gotten infected.",
        "My toddler keeps getting ear infections, this is the third one this winter, he's fussy, tugging his ear and not sleeping.",
    ],
    # Otalgia, unspecified ear
    "H92.09": [
        "My ear hurts a lot.",
        "I have an earache in one ear.",
        "Sharp pain in my ear.",
        "Earache since I woke up this morning.",
        "My son says his ear hurts.",
        "Ear pain for two days.",
        "Throbbing pain in my ear.",
        "got an ear ache, hurts",
        "My ear has been sore since yesterday.",
        "Dull ache deep in my ear that comes and goes, no discharge, no fever, my hearing is fine, it just hurts.",
    ],
    # Allergic rhinitis, unspecified
    "J30.9": [
        "My allergies are acting up again, constant sneezing and a runny nose.",
        "Hay fever is really bad this year.",
        "Every spring my eyes itch and I sneeze my head off, it's the pollen.",
        "Seasonal allergies, nose won't stop running.",
        "My son sneezes nonstop whenever the grass gets cut.",
        "Runny nose, itchy nose and an itchy throat, my usual allergy season stuff.",
        "I get a blocked, drippy nose whenever I'm around dust, it's clearly an allergy.",
        "alergies again, sneezing all day",
        "My nose gets stuffy and I start sneezing every time I'm near my friend's cats.",
        "My wife has hay fever every year from late spring into summer, sneezing fits, clear runny nose, itchy eyes, and the antihistamines she buys at the pharmacy aren't cutting it anymore.",
    ],
    # Asthma, unspecified, uncomplicated
    "J45.909": [
        "My asthma is flaring up this week.",
        "I've been wheezing and using my inhaler a lot more than usual.",
        "My son has asthma and he needs a new inhaler prescription.",
        "Asthma review, inhaler running out.",
        "Tight chest and wheezing at night, my asthma is playing up.",
        "I have asthma and it always gets worse in cold weather.",
        "My daughter's asthma is acting up since she started at the new school, she's wheezy after gym class.",
        "asma is bad, wheezing alot",
        "Wheezy chest and I'm needing my blue puffer more often, I've had asthma since I was a kid.",
        "Here for my regular asthma check.",
    ],
    # Sprain of unspecified ligament of right ankle, initial encounter
    "S93.401A": [
        "I just rolled my right ankle playing basketball.",
        "Twisted my right ankle stepping off a curb an hour ago.",
        "My son sprained his right ankle at soccer practice today.",
        "Right ankle sprain, happened this morning.",
        "My right ankle is swollen after I twisted it on the stairs last night.",
        "I think I sprained my right ankle, it just happened and I can hardly put weight on it.",
        "Rolled the right ankle on a hike yesterday, it's bruised and puffy.",
        "sprayned my right ankle at the gym today",
        "Landed badly on my right foot jumping down the last few steps and now the right ankle is swollen and sore, first time I'm getting it looked at.",
        "My right ankle turned under me while I was running for the bus this afternoon and it's ballooned up.",
    ],
    # Rash and other nonspecific skin eruption
    "R21": [
        "I've got a rash on both of my arms.",
        "There's a red rash on my son's tummy that wasn't there yesterday.",
        "A rash appeared on my legs overnight.",
        "Rash on my back, not sure from what.",
        "I noticed flat red spots all over my chest this morning.",
        "My daughter broke out in a rash, it doesn't itch and she seems fine otherwise.",
        "Skin rash that showed up out of nowhere.",
        "got a rash on my neck, no clue what it is",
        "Red blotchy rash spreading across my stomach.",
        "I've had this rash for a few days now, it started on my wrists and has moved up my forearms, it's red and spotty, and I haven't changed soaps or anything.",
    ],
    # Abnormal weight loss
    "R63.4": [
        "I've lost a lot of weight without trying.",
        "I've dropped 15 pounds in two months and I'm not dieting.",
        "My clothes keep getting looser and I don't know why, I'm eating the same as always.",
        "Unexplained weight loss over the last few months.",
        "My dad is losing weight even though he's eating normally.",
        "I keep losing weight without changing anything.",
        "The scale shows I'm down almost ten kilos since spring and I'm worried.",
        "loosing weight fast and not on purpose",
        "I've lost weight over the past few months without trying.",
        "My mom's weight has been dropping steadily, she's not dieting, her appetite seems fine, and her rings are sliding off her fingers now, which has never happened before.",
    ],
    # Palpitations
    "R00.2": [
        "My heart starts racing out of nowhere.",
        "I can feel my heart pounding hard in my chest.",
        "My heart skips beats sometimes and it scares me.",
        "Palpitations on and off all week.",
        "My mom says her heart flutters when she's just sitting still.",
        "Fluttering in my chest, like my heart is skipping a beat.",
        "My heart beats really fast for no reason.",
        "palpatations again, heart going crazy",
        "I can feel my heart thumping and racing when I'm lying in bed at night.",
        "A few times a day I get this weird flip-flop feeling of my heartbeat, like it stumbles and then races for a bit, and then it settles back to normal.",
    ],
    # Myalgia, unspecified site
    "M79.10": [
        "My muscles ache all over.",
        "Sore muscles everywhere, and not from exercise.",
        "Aching muscles in my arms and legs for a week.",
        "Muscle aches, that's the main problem.",
        "My husband says his muscles hurt all over his body.",
        "Muscle pain that just won't go away.",
        "Body aches everywhere, it feels like I ran a marathon but I didn't.",
        "mussle aches for days now",
        "My thighs and calves are sore for no reason.",
        "General muscle soreness and stiffness all over, it started a couple of weeks ago, I haven't changed my workouts or done anything unusual, my muscles just ache.",
    ],
    # Encounter for general adult medical exam without abnormal findings
    "Z00.00": [
        "I'm here for my annual physical, no complaints.",
        "Just a routine check-up, I feel fine.",
        "Yearly exam, nothing wrong with me.",
        "Annual physical, all good, no concerns.",
        "I feel healthy, I just want a general check-up.",
        "Routine adult checkup, no issues to report.",
        "Coming in for my yearly wellness visit.",
        "anual checkup, feeling good, nothing wrong",
        "No problems at all, just here for my routine exam.",
        "It's been about a year so I booked my regular physical, I feel great, no new symptoms, no meds, I just like to get everything checked once a year.",
    ],
}


def build_rows():
    rows = []
    i = 0
    for code, complaints in COMPLAINTS.items():
        for complaint in complaints:
            template = TEMPLATES[i % len(TEMPLATES)]
            rows.append({
                "instruction": template.format(complaint=complaint),
                "response": f"DIAGNOSIS_CODE: {code}",
            })
            i += 1
    return rows


def main():
    rows = build_rows()
    with OUT_PATH.open("w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    print(f"wrote {len(rows)} rows for {len(COMPLAINTS)} codes to {OUT_PATH}")


if __name__ == "__main__":
    main()
