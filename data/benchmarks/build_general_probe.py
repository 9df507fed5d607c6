"""Build the general-knowledge forgetting probe for the fine-tuning course.

The items below were written by hand for this course as a forgetting probe:
a small, offline, very easy multiple-choice test that lm-evaluation-harness
runs before and after fine-tuning to see how much general knowledge a tiny
(~135M parameter) model loses. They are original questions, not copied from
any existing benchmark.

Each item is (question, correct, [3 distractors], category). The correct
answer is placed deterministically at position (index % 4), with the
distractors filling the remaining slots in their written order, so each of
the four positions is correct for exactly a quarter of the items.

Output: general_probe.jsonl next to this script, one JSON object per line:
  {"id", "category", "question", "choices", "answer"}
Run: python3 build_general_probe.py
"""

import json
from pathlib import Path

OUT = Path(__file__).resolve().parent / "general_probe.jsonl"

CATEGORIES = ["science", "geography", "everyday", "language", "math", "health_general"]

ITEMS = [
    # ---------------- science ----------------
    ("Which planet is nearest to the Sun?", "Mercury", ["Venus", "Mars", "Jupiter"], "science"),
    ("Which gas do plants take in from the air to make food?", "Carbon dioxide", ["Helium", "Neon", "Hydrogen"], "science"),
    ("What is the largest planet in our solar system?", "Jupiter", ["Mars", "Mercury", "Venus"], "science"),
    ("What is frozen water called?", "Ice", ["Steam", "Sand", "Glass"], "science"),
    ("At what temperature in Celsius does water boil at sea level?", "100 degrees", ["50 degrees", "0 degrees", "10 degrees"], "science"),
    ("At what temperature in Celsius does pure water freeze?", "0 degrees", ["100 degrees", "50 degrees", "30 degrees"], "science"),
    ("Which star is at the center of our solar system?", "The Sun", ["The Moon", "Polaris", "Sirius"], "science"),
    ("What force pulls objects down toward the ground?", "Gravity", ["Magnetism", "Friction", "Wind"], "science"),
    ("What does a caterpillar turn into?", "A butterfly", ["A spider", "A beetle", "A snail"], "science"),
    ("Which of these animals is a mammal?", "Dog", ["Shark", "Eagle", "Frog"], "science"),
    ("What do we call an animal that eats only plants?", "Herbivore", ["Carnivore", "Predator", "Scavenger"], "science"),
    ("What natural object orbits the Earth?", "The Moon", ["The Sun", "Mars", "Jupiter"], "science"),
    ("What gives plants their green color?", "Chlorophyll", ["Salt", "Iron", "Calcium"], "science"),
    ("Which gas do humans need to breathe in to stay alive?", "Oxygen", ["Carbon dioxide", "Helium", "Methane"], "science"),
    ("What is the hardest natural material?", "Diamond", ["Gold", "Chalk", "Wood"], "science"),
    ("Which planet is known as the Red Planet?", "Mars", ["Venus", "Saturn", "Neptune"], "science"),
    ("Which planet is famous for its large, bright rings?", "Saturn", ["Mercury", "Mars", "Venus"], "science"),
    ("What is a baby frog called?", "Tadpole", ["Kitten", "Cub", "Chick"], "science"),
    ("What does a thermometer measure?", "Temperature", ["Weight", "Length", "Time"], "science"),
    ("Which state of matter keeps its own shape?", "Solid", ["Liquid", "Gas", "Steam"], "science"),
    ("Which material does a magnet pull on?", "Iron", ["Wood", "Plastic", "Glass"], "science"),
    ("How many legs does an insect have?", "Six", ["Four", "Eight", "Ten"], "science"),
    ("How many legs does a spider have?", "Eight", ["Six", "Four", "Ten"], "science"),
    ("What causes day and night on Earth?", "Earth spinning", ["Clouds moving", "The Moon's shadow", "The Sun switching off"], "science"),
    ("Which of these animals hatches from an egg?", "Chicken", ["Cow", "Horse", "Dog"], "science"),
    ("What do green plants need from the Sun to grow?", "Light", ["Sound", "Sand", "Snow"], "science"),
    ("Which part of a plant usually grows under the ground?", "Roots", ["Leaves", "Flowers", "Fruit"], "science"),
    ("What is the path a planet follows around the Sun called?", "Orbit", ["Tunnel", "Crater", "Eclipse"], "science"),
    ("What kind of animal is a whale?", "Mammal", ["Fish", "Reptile", "Insect"], "science"),
    ("Which of these is a liquid at room temperature?", "Water", ["Ice", "Stone", "Wood"], "science"),
    ("What happens to ice when it is warmed up?", "It melts", ["It freezes", "It grows", "It hardens"], "science"),
    ("What do we call water that falls from clouds?", "Rain", ["Fog", "Dew", "Lava"], "science"),
    ("What is the chemical formula for water?", "H2O", ["CO2", "O2", "NaCl"], "science"),
    ("Which animal can change its skin color to blend in?", "Chameleon", ["Elephant", "Giraffe", "Horse"], "science"),
    ("What do we call animals that are active at night?", "Nocturnal", ["Aquatic", "Domestic", "Migratory"], "science"),
    ("What is energy collected from sunlight called?", "Solar energy", ["Tidal energy", "Wind energy", "Coal energy"], "science"),
    ("What do bees collect from flowers?", "Nectar", ["Sand", "Milk", "Oil"], "science"),
    ("What is the largest animal on Earth?", "Blue whale", ["Elephant", "Giraffe", "Shark"], "science"),
    ("Which planet do humans live on?", "Earth", ["Mars", "Venus", "Jupiter"], "science"),
    ("What does a planted seed grow into?", "A plant", ["A rock", "A cloud", "A shell"], "science"),

    # ---------------- geography ----------------
    ("What is the capital of France?", "Paris", ["Rome", "Berlin", "Madrid"], "geography"),
    ("What is the largest ocean on Earth?", "Pacific Ocean", ["Atlantic Ocean", "Indian Ocean", "Arctic Ocean"], "geography"),
    ("On which continent is Egypt?", "Africa", ["Asia", "Europe", "South America"], "geography"),
    ("What is the capital of Japan?", "Tokyo", ["Beijing", "Seoul", "Bangkok"], "geography"),
    ("Which long river flows through Egypt?", "The Nile", ["The Thames", "The Seine", "The Danube"], "geography"),
    ("In which country do wild kangaroos live?", "Australia", ["Canada", "Norway", "Brazil"], "geography"),
    ("What is the capital of Italy?", "Rome", ["Paris", "Vienna", "Athens"], "geography"),
    ("On which continent is Brazil?", "South America", ["Africa", "Europe", "Asia"], "geography"),
    ("What is the capital of the United Kingdom?", "London", ["Dublin", "Paris", "Edinburgh"], "geography"),
    ("What is the capital of Germany?", "Berlin", ["Vienna", "Zurich", "Munich"], "geography"),
    ("What is the large hot desert in northern Africa called?", "Sahara", ["Gobi", "Mojave", "Atacama"], "geography"),
    ("What is the tallest mountain in the world?", "Mount Everest", ["Mont Blanc", "Mount Fuji", "Kilimanjaro"], "geography"),
    ("In which country is the Eiffel Tower?", "France", ["Spain", "Italy", "Germany"], "geography"),
    ("Which country is famous for the pyramids of Giza?", "Egypt", ["Mexico", "Peru", "India"], "geography"),
    ("What is the capital of Spain?", "Madrid", ["Lisbon", "Barcelona", "Rome"], "geography"),
    ("Which continent is the coldest?", "Antarctica", ["Africa", "Europe", "Australia"], "geography"),
    ("In which country is New York City?", "United States", ["Canada", "England", "Australia"], "geography"),
    ("What is the capital of Canada?", "Ottawa", ["Toronto", "Vancouver", "Montreal"], "geography"),
    ("Which country is shaped like a boot?", "Italy", ["Spain", "France", "Greece"], "geography"),
    ("Which river flows through London?", "The Thames", ["The Seine", "The Nile", "The Rhine"], "geography"),
    ("Which river flows through Paris?", "The Seine", ["The Thames", "The Danube", "The Tiber"], "geography"),
    ("What is the capital of China?", "Beijing", ["Shanghai", "Tokyo", "Hong Kong"], "geography"),
    ("What is the capital of Russia?", "Moscow", ["Saint Petersburg", "Kyiv", "Warsaw"], "geography"),
    ("Which ocean lies between Europe and North America?", "Atlantic Ocean", ["Pacific Ocean", "Indian Ocean", "Southern Ocean"], "geography"),
    ("What is the capital of Egypt?", "Cairo", ["Nairobi", "Lagos", "Rabat"], "geography"),
    ("In which country is the Great Wall?", "China", ["Japan", "India", "Russia"], "geography"),
    ("What is the capital of Australia?", "Canberra", ["Sydney", "Melbourne", "Perth"], "geography"),
    ("Which is the largest country by land area?", "Russia", ["Canada", "China", "Brazil"], "geography"),
    ("Most of the Amazon rainforest is in which country?", "Brazil", ["Mexico", "Chile", "Argentina"], "geography"),
    ("What is the capital of Greece?", "Athens", ["Rome", "Sofia", "Cairo"], "geography"),
    ("Which city is the capital of the United States?", "Washington, D.C.", ["New York", "Los Angeles", "Chicago"], "geography"),
    ("On which continent is India?", "Asia", ["Africa", "Europe", "Australia"], "geography"),
    ("Which country lies directly north of the United States?", "Canada", ["Mexico", "Cuba", "Brazil"], "geography"),
    ("Which country shares the southern border of the United States?", "Mexico", ["Canada", "Peru", "Chile"], "geography"),
    ("What is the capital of Portugal?", "Lisbon", ["Madrid", "Porto", "Rome"], "geography"),
    ("What is land completely surrounded by water called?", "Island", ["Peninsula", "Valley", "Canyon"], "geography"),
    ("Which is the smallest continent?", "Australia", ["Asia", "Africa", "Europe"], "geography"),
    ("How many continents are there on Earth?", "Seven", ["Five", "Nine", "Twelve"], "geography"),
    ("In which direction does the Sun rise?", "East", ["West", "North", "South"], "geography"),
    ("Which Italian city is famous for its canals and gondolas?", "Venice", ["Milan", "Naples", "Turin"], "geography"),

    # ---------------- everyday ----------------
    ("What do you use to dry yourself after a shower?", "A towel", ["A fork", "A pillow", "A spoon"], "everyday"),
    ("Where do you keep milk cold at home?", "Refrigerator", ["Oven", "Closet", "Bathtub"], "everyday"),
    ("What do you use to unlock a door?", "A key", ["A spoon", "A brush", "A pen"], "everyday"),
    ("What do people wear on their feet?", "Shoes", ["Gloves", "Hats", "Scarves"], "everyday"),
    ("What do you use to write on a blackboard?", "Chalk", ["Soap", "Butter", "Glue"], "everyday"),
    ("What do you use to brush your teeth?", "A toothbrush", ["A comb", "A sponge", "A fork"], "everyday"),
    ("What is the best tool for driving a nail into wood?", "A hammer", ["A pillow", "A spoon", "A sock"], "everyday"),
    ("What do you open to let fresh air into a room?", "A window", ["A fridge", "A drawer", "An oven"], "everyday"),
    ("What is the best utensil for eating soup?", "A spoon", ["A knife", "A fork", "Chopsticks"], "everyday"),
    ("What keeps you dry when walking in the rain?", "An umbrella", ["Sunglasses", "Sandals", "A fan"], "everyday"),
    ("Which machine is used to clean dirty clothes?", "Washing machine", ["Oven", "Freezer", "Toaster"], "everyday"),
    ("What do you use to boil water for tea?", "A kettle", ["A toaster", "A blender", "A freezer"], "everyday"),
    ("What do you look into to see your own face?", "A mirror", ["A clock", "A plate", "A book"], "everyday"),
    ("What usually happens to a glass cup dropped on a stone floor?", "It breaks", ["It bounces", "It melts", "It grows"], "everyday"),
    ("What do you use to sweep dust off the floor?", "A broom", ["A ladder", "A fork", "A pillow"], "everyday"),
    ("What do you wear to keep your hands warm?", "Gloves", ["Socks", "A belt", "Glasses"], "everyday"),
    ("What do you climb to reach a high shelf?", "A ladder", ["A pillow", "A bucket", "A broom"], "everyday"),
    ("Which container is best for carrying water?", "A bucket", ["A net", "A sieve", "A basket"], "everyday"),
    ("What is best for slicing a loaf of bread?", "A knife", ["A spoon", "A straw", "A brush"], "everyday"),
    ("What do you switch on to light a dark room?", "A lamp", ["A fan", "A radio", "A faucet"], "everyday"),
    ("What do you usually drink water from?", "A cup", ["A plate", "A fork", "A shoe"], "everyday"),
    ("What should you do before crossing a street?", "Look both ways", ["Close your eyes", "Run backwards", "Sit down"], "everyday"),
    ("What do you use to stick two pieces of paper together?", "Glue", ["Water", "Sand", "Oil"], "everyday"),
    ("What do people sleep on at night?", "A bed", ["A table", "A stove", "A sink"], "everyday"),
    ("What do you use with water to wash your hands?", "Soap", ["Salt", "Sugar", "Flour"], "everyday"),
    ("Where do you bake a cake?", "In an oven", ["In a freezer", "In a sink", "In a bathtub"], "everyday"),
    ("What do you use to rub out pencil marks?", "An eraser", ["Glue", "A ruler", "Tape"], "everyday"),
    ("What do you use to measure the length of a line?", "A ruler", ["A scale", "A clock", "A thermometer"], "everyday"),
    ("What do you look at to tell the time?", "A clock", ["A compass", "A scale", "A ruler"], "everyday"),
    ("What happens to butter in a hot pan?", "It melts", ["It freezes", "It hardens", "It turns blue"], "everyday"),
    ("What do you wear to protect your head when riding a bike?", "A helmet", ["A scarf", "A glove", "A sock"], "everyday"),
    ("Which of these floats on water?", "A wooden stick", ["An iron nail", "A stone", "A coin"], "everyday"),
    ("What do you use to dig a hole in the garden?", "A shovel", ["A comb", "A pencil", "A towel"], "everyday"),
    ("What do you use to talk to someone far away?", "A telephone", ["A calendar", "A stapler", "A pillow"], "everyday"),
    ("How can you make a sunny room darker?", "Close the curtains", ["Open the window", "Turn on lamps", "Paint the floor"], "everyday"),
    ("What do you stick on an envelope before mailing it?", "A stamp", ["Butter", "Sugar", "A leaf"], "everyday"),
    ("Which is heavier, a brick or a feather?", "A brick", ["A feather", "Same weight", "Neither"], "everyday"),
    ("How can you cool down a spoonful of hot soup?", "Blow on it", ["Boil it again", "Put it in the oven", "Cover it with a blanket"], "everyday"),
    ("What do you use to sew a button onto a shirt?", "Needle and thread", ["Hammer and nail", "Knife and fork", "Pen and paper"], "everyday"),
    ("Where should you throw away rubbish?", "In a trash can", ["In a bathtub", "On a bookshelf", "In a mailbox"], "everyday"),

    # ---------------- language ----------------
    ("What is the opposite of \"hot\"?", "Cold", ["Warm", "Big", "Fast"], "language"),
    ("What is the opposite of \"up\"?", "Down", ["Left", "Over", "High"], "language"),
    ("What is the plural of \"child\"?", "Children", ["Childs", "Childes", "Childen"], "language"),
    ("What is the plural of \"mouse\"?", "Mice", ["Mouses", "Meese", "Mousen"], "language"),
    ("Which word means the same as \"happy\"?", "Glad", ["Sad", "Angry", "Tired"], "language"),
    ("Which word means the same as \"big\"?", "Large", ["Tiny", "Short", "Thin"], "language"),
    ("What is the opposite of \"day\"?", "Night", ["Noon", "Morning", "Week"], "language"),
    ("Which of these words is a noun?", "Table", ["Quickly", "Happy", "Slowly"], "language"),
    ("Which of these words is a verb?", "Run", ["Chair", "Green", "Apple"], "language"),
    ("Which of these words is an adjective?", "Beautiful", ["Quickly", "Walk", "Under"], "language"),
    ("What is the past tense of \"go\"?", "Went", ["Goed", "Gone", "Going"], "language"),
    ("What is the past tense of \"eat\"?", "Ate", ["Eated", "Eating", "Eats"], "language"),
    ("What is the past tense of \"run\"?", "Ran", ["Runned", "Running", "Runs"], "language"),
    ("How many letters are in the English alphabet?", "26", ["24", "30", "20"], "language"),
    ("Which letter comes right after \"C\" in the alphabet?", "D", ["B", "E", "F"], "language"),
    ("Which of these letters is a vowel?", "O", ["B", "K", "T"], "language"),
    ("What is the opposite of \"open\"?", "Closed", ["Empty", "Wide", "Early"], "language"),
    ("Which word rhymes with \"cat\"?", "Hat", ["Dog", "Cup", "Sun"], "language"),
    ("Which word rhymes with \"tree\"?", "Bee", ["Leaf", "Bark", "Root"], "language"),
    ("What is the plural of \"foot\"?", "Feet", ["Foots", "Feets", "Footes"], "language"),
    ("What is the opposite of \"young\"?", "Old", ["New", "Small", "Tall"], "language"),
    ("Which punctuation mark ends a question?", "Question mark", ["Comma", "Colon", "Hyphen"], "language"),
    ("Which word is spelled correctly?", "Because", ["Becuase", "Becaus", "Beacuse"], "language"),
    ("What is the opposite of \"full\"?", "Empty", ["Heavy", "Round", "Clean"], "language"),
    ("Which word means the same as \"fast\"?", "Quick", ["Slow", "Late", "Heavy"], "language"),
    ("What is the opposite of \"win\"?", "Lose", ["Play", "Score", "Try"], "language"),
    ("What is the plural of \"tooth\"?", "Teeth", ["Tooths", "Toothes", "Teeths"], "language"),
    ("Which word fills the gap: \"Yesterday, I ___ a letter.\"?", "wrote", ["write", "writing", "writes"], "language"),
    ("What is the opposite of \"begin\"?", "End", ["Start", "Open", "Go"], "language"),
    ("Which of these words is a color?", "Purple", ["Table", "Happy", "Seven"], "language"),
    ("Which of these words names an animal?", "Elephant", ["Window", "River", "Pencil"], "language"),
    ("What is a word that means the opposite of another word called?", "Antonym", ["Synonym", "Verb", "Noun"], "language"),
    ("What is the opposite of \"heavy\"?", "Light", ["Big", "Hard", "Strong"], "language"),
    ("Which of these words is a greeting?", "Hello", ["Table", "Under", "Slowly"], "language"),
    ("What is the plural of \"box\"?", "Boxes", ["Boxs", "Boxen", "Boxies"], "language"),
    ("What is the past tense of \"see\"?", "Saw", ["Seed", "Sawed", "Seeing"], "language"),
    ("What is the opposite of \"early\"?", "Late", ["Soon", "First", "Quick"], "language"),
    ("Which letter is first in the English alphabet?", "A", ["Z", "B", "M"], "language"),
    ("Which of these words is a pronoun?", "She", ["Run", "Blue", "Table"], "language"),
    ("What is the opposite of \"loud\"?", "Quiet", ["Tall", "Bright", "Fast"], "language"),

    # ---------------- math ----------------
    ("What is 2 + 3?", "5", ["4", "6", "7"], "math"),
    ("What is 10 - 4?", "6", ["5", "7", "14"], "math"),
    ("What is 3 x 4?", "12", ["7", "10", "14"], "math"),
    ("What is 20 divided by 5?", "4", ["5", "15", "25"], "math"),
    ("How many sides does a triangle have?", "3", ["4", "5", "6"], "math"),
    ("How many sides does a square have?", "4", ["3", "5", "6"], "math"),
    ("How many minutes are in one hour?", "60", ["30", "100", "24"], "math"),
    ("How many hours are in one day?", "24", ["12", "60", "7"], "math"),
    ("How many days are in one week?", "7", ["5", "10", "12"], "math"),
    ("What is half of 10?", "5", ["2", "20", "8"], "math"),
    ("What is 7 + 8?", "15", ["13", "14", "16"], "math"),
    ("What is 9 x 9?", "81", ["72", "90", "99"], "math"),
    ("Which of these numbers is the largest?", "100", ["10", "50", "99"], "math"),
    ("Which of these numbers is even?", "8", ["3", "7", "9"], "math"),
    ("Which of these numbers is odd?", "5", ["2", "4", "6"], "math"),
    ("How many months are in one year?", "12", ["10", "52", "365"], "math"),
    ("What is 100 - 1?", "99", ["98", "101", "90"], "math"),
    ("How many centimeters are in one meter?", "100", ["10", "1000", "12"], "math"),
    ("What is 5 x 5?", "25", ["10", "20", "55"], "math"),
    ("What number comes next: 2, 4, 6, 8, ...?", "10", ["9", "12", "11"], "math"),
    ("How many sides does a hexagon have?", "6", ["5", "7", "8"], "math"),
    ("What is 1 + 1?", "2", ["1", "3", "11"], "math"),
    ("What is double 6?", "12", ["3", "8", "36"], "math"),
    ("What shape is a ball?", "Sphere", ["Cube", "Cone", "Pyramid"], "math"),
    ("How many seconds are in one minute?", "60", ["100", "30", "24"], "math"),
    ("What is 50 + 50?", "100", ["1000", "55", "500"], "math"),
    ("What is a quarter of 100?", "25", ["4", "40", "75"], "math"),
    ("How many degrees are in a right angle?", "90", ["45", "180", "360"], "math"),
    ("What is 12 - 12?", "0", ["1", "12", "24"], "math"),
    ("What is 6 x 7?", "42", ["36", "48", "13"], "math"),
    ("What is 15 + 5?", "20", ["10", "25", "155"], "math"),
    ("How many grams are in one kilogram?", "1000", ["100", "10", "60"], "math"),
    ("What is 3 squared?", "9", ["6", "12", "33"], "math"),
    ("What is one half written as a decimal?", "0.5", ["0.2", "1.2", "2.0"], "math"),
    ("How many corners does a rectangle have?", "4", ["3", "5", "8"], "math"),
    ("What is 10 x 10?", "100", ["20", "1000", "110"], "math"),
    ("Which number comes right after 19?", "20", ["18", "21", "29"], "math"),
    ("What is 30 divided by 3?", "10", ["3", "33", "90"], "math"),
    ("How many eggs are in a dozen?", "12", ["10", "6", "20"], "math"),
    ("If you have 3 apples and eat 1, how many are left?", "2", ["1", "3", "4"], "math"),

    # ---------------- health_general ----------------
    ("Which organs do we use to breathe?", "Lungs", ["Stomach", "Liver", "Kidneys"], "health_general"),
    ("Which organ do we use to think?", "Brain", ["Heart", "Lungs", "Stomach"], "health_general"),
    ("Which body parts do we use to hear?", "Ears", ["Eyes", "Nose", "Tongue"], "health_general"),
    ("Which body part do we use to smell?", "Nose", ["Ears", "Eyes", "Elbow"], "health_general"),
    ("Which body parts do we use to see?", "Eyes", ["Ears", "Nose", "Knees"], "health_general"),
    ("Which body part has taste buds?", "Tongue", ["Nose", "Elbow", "Knee"], "health_general"),
    ("What should you do before eating to get rid of germs?", "Wash your hands", ["Run fast", "Take a nap", "Shout loudly"], "health_general"),
    ("Which of these foods is a fruit?", "Apple", ["Carrot", "Bread", "Cheese"], "health_general"),
    ("Which orange vegetable is said to be good for your eyes?", "Carrot", ["Broccoli", "Lettuce", "Cucumber"], "health_general"),
    ("Which vitamin does skin make from sunlight?", "Vitamin D", ["Vitamin C", "Vitamin A", "Vitamin B12"], "health_general"),
    ("Which food is rich in vitamin C?", "Oranges", ["Rice", "Butter", "Bread"], "health_general"),
    ("What hard parts make up the human skeleton?", "Bones", ["Muscles", "Skin", "Hair"], "health_general"),
    ("What is the best drink to stay hydrated?", "Water", ["Soda", "Coffee", "Syrup"], "health_general"),
    ("How much sleep do most adults need each night?", "7 to 9 hours", ["2 to 3 hours", "12 to 15 hours", "1 hour"], "health_general"),
    ("Which bone protects the brain?", "Skull", ["Ribs", "Kneecap", "Pelvis"], "health_general"),
    ("What do the ribs protect?", "Heart and lungs", ["Brain", "Feet", "Hands"], "health_general"),
    ("What is the largest organ of the human body?", "Skin", ["Heart", "Brain", "Lungs"], "health_general"),
    ("Which organ breaks down food after you swallow it?", "Stomach", ["Lungs", "Brain", "Heart"], "health_general"),
    ("What do you put on your skin to prevent sunburn?", "Sunscreen", ["Toothpaste", "Shampoo", "Hair gel"], "health_general"),
    ("How often should you brush your teeth?", "Twice a day", ["Once a month", "Once a year", "Never"], "health_general"),
    ("What should you cover when you sneeze?", "Mouth and nose", ["Your ears", "Your eyes", "Your feet"], "health_general"),
    ("Which of these is the healthiest snack?", "An apple", ["Candy", "Potato chips", "Soda"], "health_general"),
    ("What do doctors use to listen to your heartbeat?", "Stethoscope", ["Telescope", "Microscope", "Thermometer"], "health_general"),
    ("What is normal human body temperature in Celsius?", "About 37 degrees", ["About 20 degrees", "About 45 degrees", "About 10 degrees"], "health_general"),
    ("What color is human blood?", "Red", ["Blue", "Green", "Yellow"], "health_general"),
    ("Which organs filter the blood and make urine?", "Kidneys", ["Lungs", "Heart", "Eyes"], "health_general"),
    ("What does regular exercise make stronger?", "Muscles", ["Hair", "Fingernails", "Eyelashes"], "health_general"),
    ("Which mineral helps build strong bones?", "Calcium", ["Sugar", "Salt", "Caffeine"], "health_general"),
    ("Which drink is a good source of calcium?", "Milk", ["Soda", "Coffee", "Lemonade"], "health_general"),
    ("About how many bones does an adult human have?", "206", ["50", "100", "500"], "health_general"),
    ("Which person takes care of your teeth?", "A dentist", ["A veterinarian", "A baker", "A pilot"], "health_general"),
    ("Which joint connects the hand to the arm?", "Wrist", ["Ankle", "Knee", "Neck"], "health_general"),
    ("Which joint bends in the middle of your leg?", "Knee", ["Elbow", "Wrist", "Shoulder"], "health_general"),
    ("Which joint bends in the middle of your arm?", "Elbow", ["Knee", "Ankle", "Hip"], "health_general"),
    ("Which habit helps stop the spread of germs?", "Washing hands", ["Sharing cups", "Skipping baths", "Licking fingers"], "health_general"),
    ("In which part of the body are the lungs?", "Chest", ["Head", "Legs", "Feet"], "health_general"),
    ("How many lungs does a healthy person have?", "Two", ["One", "Three", "Four"], "health_general"),
    ("Which of these foods is a vegetable?", "Broccoli", ["Banana", "Cheese", "Bread"], "health_general"),
    ("What does the heart pump around the body?", "Blood", ["Air", "Food", "Water"], "health_general"),
    ("What gives the body energy to move and grow?", "Food", ["Rocks", "Paper", "Plastic"], "health_general"),
]


def build():
    records = []
    for i, (question, correct, distractors, category) in enumerate(ITEMS):
        assert category in CATEGORIES, category
        assert len(distractors) == 3, question
        pos = i % 4
        choices = list(distractors)
        choices.insert(pos, correct)
        records.append({
            "id": f"gk-{i + 1:03d}",
            "category": category,
            "question": question,
            "choices": choices,
            "answer": pos,
        })
    return records


def main():
    records = build()
    with OUT.open("w", encoding="utf-8") as f:
        for r in records:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    print(f"wrote {len(records)} items to {OUT}")


if __name__ == "__main__":
    main()
