"""Hand-written English seeds for the `simple` tier: a cheap local model answers these well.

Some of them are deliberately long (a pasted email to proofread, a paragraph to translate, an article
to title): the task is still simple, whatever the length of the input.
"""

from seedlib import Book, M

b = Book("simple")

b.add("chit-chat", "en", [
    "hi",
    "Hello! How are you doing today?",
    "good morning :)",
    "Thanks, that was really helpful!",
    "lol ok that's funny. tell me a joke about cats",
    "What's your name?",
    "Are you a real person or a bot?",
    "I'm bored. Say something interesting.",
    "Tell me a fun fact about octopuses.",
    "Can you say happy birthday to my sister Priya? She's turning 30 today.",
    "hey, just testing if this works",
    "Good night! Talk tomorrow.",
    "Give me a pun about coffee.",
    "I just passed my driving test!!!",
    "What's a good name for a goldfish?",
    "ok thanks bye",
    M("Thanks so much, that's all I needed!",
      history=["Can you remind me what the capital of Canada is?",
               "The capital of Canada is Ottawa, located in the province of Ontario."]),
    M("perfect, thank you. have a nice weekend",
      history=["Can you turn 'meeting moved to 3pm' into a polite one-line Slack message?",
               "Sure: \"Heads up — today's meeting has moved to 3pm. See you then!\""]),
])

b.add("lookup", "en", [
    "What is the capital of Australia?",
    "When was the Eiffel Tower built?",
    "Who wrote Pride and Prejudice?",
    "How many bones are in the adult human body?",
    "what's the tallest mountain in africa",
    "Which planet is closest to the sun?",
    "What year did the Berlin Wall fall?",
    "Who painted the Mona Lisa?",
    "What's the chemical symbol for gold?",
    "How many players are on a soccer team on the field?",
    "What language do they speak in Brazil?",
    "What is the boiling point of water in Fahrenheit?",
    "who is the author of the hobbit",
    "What currency does Switzerland use?",
    "How long is a marathon in kilometers?",
    "Is a tomato a fruit or a vegetable?",
    "Is Python case-sensitive?",
    "Does the Great Wall of China really show up from space?",
    "Is it safe to put a cast iron pan in the dishwasher?",
    "Can penguins fly?",
    "Is Mount Everest in Nepal or China?",
    "What's the default port for PostgreSQL?",
    "What does HTTP status code 404 mean?",
    "Which keyboard shortcut undoes in VS Code on a Mac?",
    "What time zone is Chicago in?",
    "How many ounces are in a cup?",
    "What's the largest ocean?",
    "Who was the first person to walk on the moon?",
    "What's the speed of light, roughly?",
    "Is 2024 a leap year?",
    M("What's the weather going to be like in Lisbon tomorrow?",
      system="You are a voice assistant in a car. You can call the weather, navigation and calendar tools. Keep answers short.",
      tools=True),
    M("set a timer for 12 minutes for the pasta",
      system="You are a kitchen assistant on a smart speaker. Tools available: timer, shopping_list, unit_convert.",
      tools=True),
    M("What's on my calendar tomorrow morning?",
      system="You are a personal assistant with access to the user's calendar and email via tools.",
      tools=True),
    M("Which one is older?",
      history=["Who founded Harvard and Yale?",
               "Harvard was founded in 1636 and named after John Harvard, an early benefactor. Yale was founded in 1701 by a group of Connecticut clergymen and later named after Elihu Yale."]),
    M("and what's its population?",
      history=["what's the capital of Mongolia", "The capital of Mongolia is Ulaanbaatar."]),
])

b.add("list", "en", [
    "Name three primary colors.",
    "List five fruits that are high in vitamin C.",
    "Give me 3 ideas for a team name for a pub quiz.",
    "Name four countries that border Germany.",
    "What are the seven continents?",
    "list the planets in order from the sun",
    "Give me five synonyms for 'happy'.",
    "Name three famous composers from the Baroque period.",
    "What are three common HTTP methods?",
    "Suggest 5 names for a small bakery.",
    "Give me three easy houseplants that survive low light.",
    "List the days of the week in French.",
    "three board games for two players?",
    "Name some vegetables that grow well in shade.",
])

b.add("arithmetic", "en", [
    "What is 17 times 23?",
    "What's 15% of 80?",
    "Convert 5 miles to kilometers.",
    "how many minutes in 3.5 hours",
    "What's 72 degrees Fahrenheit in Celsius?",
    "If I split a $94 bill between 4 people, how much does each pay?",
    "What is the square root of 144?",
    "1234 + 5678 = ?",
    "How many grams are in 2.5 pounds?",
    "What is 2 to the power of 10?",
    "Convert 3 feet 7 inches to centimeters.",
    "What's 18% tip on $46.50?",
    "How many seconds are in a day?",
    "divide 1000 by 8",
    "What's 250 ml in cups?",
    "If a train goes 60 km/h for 2.5 hours, how far does it go?",
    "How many days are there between March 3 and March 29?",
    "What's 3/4 as a percentage?",
    "Convert 1.5 GB to MB.",
    "What is 9 squared minus 7?",
])

b.add("definition", "en", [
    "What does 'ubiquitous' mean?",
    "Define photosynthesis in one sentence.",
    "What is an API?",
    "what does ETA stand for",
    "What's the difference between 'affect' and 'effect'?",
    "What is a haiku?",
    "What does 'idempotent' mean in programming?",
    "Meaning of 'schadenfreude'?",
    "What is a prime number?",
    "What does the acronym GDPR stand for?",
    "What is a mortgage?",
    "What's an ETF?",
    "What's a noun?",
    "What does 'RSVP' mean on an invitation?",
    "What is latency in networking, in simple terms?",
    "What does 'sudo' do?",
    "What is a CSV file?",
])

b.add("translation", "en", [
    "Translate 'good morning' into Spanish.",
    "How do you say 'thank you very much' in Japanese?",
    "Translate to German: Where is the train station?",
    "What's 'I love you' in Italian?",
    "translate 'the meeting is postponed until Friday' to french",
    "How do I say 'Can I have the bill, please?' in Portuguese?",
    "Translate this into Chinese: Happy New Year, wishing you good health.",
    "What does 'je ne sais quoi' mean in English?",
    "Translate 'Bitte nicht stören' to English.",
    "How do you say 'cheers' in Dutch?",
    """Please translate this paragraph into French, keep the tone friendly:

Hi everyone! Just a reminder that our neighbourhood clean-up day is this Saturday, starting at 9am in front of the community centre. We'll provide gloves, bags and coffee, so you only need to bring yourself (and maybe a friend). We usually finish by noon, and afterwards there's a small picnic in the park for anyone who wants to stay. Kids are very welcome, but please keep an eye on them near the road. If it rains, we'll move the date to the following Saturday and I'll send another message. See you there!""",
    """Can you translate this to Spanish? It's for a sign at our rental apartment.

Welcome! We hope you enjoy your stay. Check-in is from 3pm and check-out is by 11am. The Wi-Fi network is "Casa_Azul" and the password is on the fridge. Please don't smoke inside the apartment, and keep noise down after 10pm because the neighbours have small children. Towels are in the wardrobe in the bedroom. Put the rubbish in the bins downstairs: green for glass, yellow for plastic, grey for everything else. If something breaks or you need help, call or text Marta at the number on the door. Have a wonderful time in Valencia!""",
    """translate to german pls:

Dear Mr. Becker, thank you for your quick reply. Unfortunately I cannot make it on Tuesday because I have a doctor's appointment in the morning. Would Wednesday or Thursday afternoon work for you instead? I'm flexible after 2pm on both days. I will bring the signed documents and a copy of my passport. Best regards, Anna Kowalski""",
    M("Translate the same thing into Italian too.",
      history=["Translate 'Our office is closed on public holidays' into Spanish.",
               "\"Nuestra oficina permanece cerrada los días festivos.\""]),
])

b.add("rewrite", "en", [
    "Fix the grammar: 'Me and him goes to the store yesterday.'",
    "Make this sound more polite: 'Send me the report now.'",
    "Rephrase: 'The project was delayed due to unforeseen circumstances.'",
    "Can you make this sentence shorter? 'At this point in time we are not currently in a position to offer a refund.'",
    "Rewrite this to sound more casual: 'Please be advised that the office will be closed on Monday.'",
    "Fix typos: 'Teh quick brwon fox jumpd over teh lazy dog.'",
    "Make this more formal: 'hey, can't make it tmrw, sorry!!'",
    "Reword this so it doesn't sound passive-aggressive: 'As I already said in my last email, the deadline is Friday.'",
    "Give me a more exciting version of this headline: 'Local library extends opening hours'",
    "Rewrite in the active voice: 'The cake was eaten by the children.'",
    "Change 'its' / 'it's' where needed: 'Its going to rain, and the dog wants it's blanket.'",
    """Can you fix the typos and grammar in this email? Don't change the meaning or make it longer.

Hi Sarah,

I hope your doing well. I wanted to follow up on are conversation from last week about the budget for the Q3 marketing campain. As I mentioned, we was thinking about moving some of the money from print ads to social media, since the numbers from last quarter shows that print isnt really working for us anymore. I attatched a spreadsheet with the breakdown, its not final but it give you an idea.

Could we maybe set up a meeting on thursday or friday to go over it togehter? I think it would be good to have Mark their too since he is responsable for the social media accounts. Let me know what time work for you and I'll send a invite.

Also, just a reminder that the deadline for the final budget is the 15th, so we dont have alot of time.

Thanks so much and have a grate day!

Best,
Tom""",
    """proofread this pls, only fix spelling + punctuation

Dear parents,

This is a reminder that the school trip to the science museum will take place on friday 14th of june. Children should arrive at school by 8.15 am, the bus leaves at 8.30 sharp and we can not wait for latecomers. Please make sure your child bring a packed lunch, a water bottle and a rain jacket as part of the visit is outside. Mobile phones are not alowed on the trip. The cost of the trip is 12 euros which should be paid through the school app before wensday. If your child has any allergys or needs medication during the day, please let the class teacher know in writting. We expect to be back at school around 3.30 pm but this may change depending on trafic, we will send a message on the app if we are delayed.

Thank you for your support,
Ms. Okafor, Year 4""",
    """Rewrite this paragraph so it's easier to read for a general audience. Keep it about the same length.

The municipality hereby informs residents that, commencing on the first day of the forthcoming month, the collection of residual household waste will be effectuated on a biweekly rather than weekly basis, whereas the collection of recyclable materials, including but not limited to paper, cardboard and packaging, shall continue to be performed on a weekly basis. Residents are requested to ensure that receptacles are positioned at the kerbside no later than 07:00 on the designated collection day.""",
    "Fix the capitalization in this title: 'a beginner's guide to baking SOURDOUGH bread at home'",
    M("Shorter please, one line.",
      history=["Can you write a sentence for my email saying I'll be out of office next week?",
               "Thank you for your message. Please note that I will be out of the office from Monday, June 10 through Friday, June 14, with limited access to email. I will respond to your message as soon as possible upon my return."]),
])

b.add("formatting", "en", [
    "Turn this into a bullet list: eggs, milk, flour, butter, sugar, vanilla",
    "Make this a numbered list: wake up, shower, make coffee, check email, start work",
    "Put these names in alphabetical order: Zoe, Adam, Maria, Chen, Liam, Fatima",
    "Convert this to a markdown table: Name: Ana, Age: 31, City: Porto; Name: Ben, Age: 27, City: Leeds",
    "Capitalize every word: the lord of the rings the return of the king",
    "Sort these numbers from smallest to largest: 42, 7, 19, 3, 88, 25",
    "Format this date as ISO 8601: March 5th, 2024",
    "Turn this into JSON: name John, age 30, email john@example.com",
    """Turn these meeting notes into a clean bullet list, no other changes:

talked about the new office layout, people want more quiet rooms. Jenna will get quotes from two furniture suppliers by next friday. the kitchen fridge is a mess again, reminder to label food. parking passes renew in July, HR sends the form. team lunch moved to the 21st because of the holiday. someone asked about bike racks, Omar will check with the landlord. next meeting in two weeks same time.""",
    """Can you put this in a table with columns Item, Qty, Price?

2 x USB-C cable at 9.99 each
1 x laptop stand 34.50
3 x notebook A5 4.20 each
1 x wireless mouse 24.00
5 x pens (blue) 1.10 each
1 x desk lamp 39.90""",
    "Convert this sentence to title case: how to train your dragon in ten easy steps",
    "Remove the duplicates from this list: apple, pear, apple, kiwi, pear, plum, kiwi, fig",
    """Sort this list alphabetically and put it in one column:

Portugal, Austria, Chile, Kenya, Norway, Vietnam, Egypt, Canada, Peru, Belgium, Japan, Mexico, Ireland, Ghana, Finland, Denmark, Morocco, Thailand, Uruguay, Greece""",
])

b.add("summary", "en", [
    """Summarize this in one sentence:

The city council voted on Tuesday to extend the opening hours of all public libraries until 9pm on weekdays, starting in September. The decision follows a survey in which more than 60% of residents said they could not visit during the current hours because of work. The extra hours will be funded by reallocating part of the budget previously set aside for a new parking garage.""",
    """Give this article a short title:

After three years of restoration, the 19th-century lighthouse on Kestrel Point reopened to visitors on Saturday. Volunteers from the local historical society spent more than 12,000 hours repairing the iron staircase, replacing broken glass in the lantern room and repainting the tower in its original red and white stripes. The project was funded by a mix of lottery grants and small donations, including a bake sale that raised almost £4,000. The lighthouse, which was decommissioned in 1987 when an automated beacon was installed nearby, will be open on weekends from April to October. Visitors can climb the 142 steps to the top for views of the coastline, and a small museum on the ground floor tells the story of the keepers who lived there. "It's been a labour of love," said project leader Margaret Hale, 74, whose grandfather was one of the last keepers. The society hopes the attraction will bring more tourists to the village, which has struggled since the closure of its fish processing plant.""",
    """tl;dr this for me:

Hey team, quick update on the office move. The movers are booked for Friday the 22nd from 7am. Please pack your desks by Thursday evening using the boxes in the storage room (label them with your name and new desk number, which is on the floor plan I attached last week). IT will disconnect computers on Thursday at 5pm, so save your work. Monitors and docking stations stay; laptops go home with you over the weekend. The new office opens Monday at 8am — access cards will be at reception. Parking is in the garage under the building, level -2. Any questions, ping me.""",
    """What's the main point of this paragraph? One line.

Many people believe that drinking eight glasses of water a day is a scientific rule, but the recommendation is not based on strong evidence. Our bodies get water from food as well as drinks, and needs vary a lot depending on climate, activity and body size. For most healthy adults, drinking when thirsty and checking that urine is pale yellow is a reasonable guide.""",
    """Summarize this review in 2 bullet points:

I bought this blender for smoothies and it does the job really well — frozen fruit, ice, spinach, no problem, and it's done in under a minute. The jug is easy to clean, just add water and a drop of soap and run it for a few seconds. My only real complaint is the noise: it's loud enough that I can't use it early in the morning without waking my roommate. Also the lid is a bit stiff. For the price, though, I'd still buy it again.""",
    """Give me 3 keywords for this abstract:

We present a low-cost sensor network for monitoring air quality in schools. Forty classrooms in six schools were equipped with CO2, temperature and humidity sensors reporting every five minutes over LoRaWAN. Over one academic year, CO2 concentrations exceeded 1,500 ppm in 38% of occupied hours, most often in winter when windows were closed. A simple dashboard that alerted teachers to open windows reduced exceedances by roughly half.""",
    """Can you summarize this message from my landlord in plain English?

Pursuant to clause 7 of your tenancy agreement, please be advised that routine inspection of the premises will be conducted on the 14th inst. between the hours of 10:00 and 12:00. Your presence is not required; however, should you wish to be present, kindly notify the undersigned no later than 48 hours prior. Access will be effected by means of the spare key held by the agency.""",
    """Title for this blog post?

I started running last year with zero experience. I couldn't run for more than two minutes without stopping. I followed a beginner plan three times a week: alternating one minute of running with ninety seconds of walking, and adding a little bit every week. By month three I could run 5k without stopping. By month eight I ran my first 10k race. I'm not fast — I finished in the last quarter — but I never thought I'd get here. The two things that helped most were going slow enough to hold a conversation and running with a friend on Saturdays so I couldn't skip.""",
    """Here's a paragraph from my textbook. Summarize it for me in two sentences:

The Industrial Revolution began in Britain in the late 18th century and spread to Europe and North America during the 19th century. It was marked by the shift from hand production to machines, new chemical manufacturing and iron production processes, the increasing use of steam power, and the rise of the factory system. Textiles were the dominant industry in terms of employment, value of output and capital invested. The revolution led to unprecedented population growth and urbanization, as people moved from rural areas to cities in search of work, and living conditions in the new industrial towns were often crowded and unsanitary.""",
    """What is this email asking me to do?

Hi, hope all's good! Just a gentle nudge on the expense report from the Madrid trip — finance needs it by end of day Thursday or it rolls into next month's cycle. If you can't find the hotel receipt, the booking confirmation is fine. Cheers, Dana""",
    M("Can you summarize what you just said in one sentence?",
      history=["What's the difference between a virus and a bacterium?",
               "Bacteria are single-celled living organisms that can reproduce on their own; many are harmless or even helpful, and bacterial infections can often be treated with antibiotics. Viruses are much smaller, are not cells, and can only reproduce by hijacking the cells of a host; antibiotics don't work against them, though antivirals and vaccines can help."]),
])

SEEDS = b.seeds
