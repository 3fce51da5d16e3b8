"""Hand-written English seeds for the `standard` tier: a mid-size model does these well. More than a fact
or a rewrite, less than an investigation: explain a concept at moderate depth, write a short function or
query, draft a letter, compare two options briefly, plan a small task.
"""

from seedlib import Book, M

b = Book("standard")

b.add("explain", "en", [
    "Explain how HTTPS keeps my password safe when I log in to a website.",
    "What is the difference between a process and a thread? Give an example of when you'd use each.",
    "Explain compound interest with a worked example of $1,000 at 5% over 10 years.",
    "How does a refrigerator actually make things cold?",
    "Explain what a database index is and why it makes some queries faster and others slower.",
    "Why do we have leap years? Explain the rule about years divisible by 100 and 400.",
    "Can you explain how vaccines train the immune system, in a few paragraphs for a teenager?",
    "What's the difference between TCP and UDP, and why do video calls usually use UDP?",
    "Explain the difference between stocks and bonds for someone who just got their first job.",
    "How does garbage collection work in Java, roughly? I don't need every detail.",
    "What is inflation and why do central banks raise interest rates to fight it?",
    "Explain what Git rebase does compared to merge, with a small example of the history before and after.",
    "Why is the sky blue but sunsets are red?",
    "What is a hash table and what happens when two keys collide?",
    "Explain the greenhouse effect in about 200 words.",
    "How do noise-cancelling headphones work?",
    "What does 'big O notation' mean? Show O(1), O(n) and O(n^2) with a simple example each.",
    "Explain what DNS is and what happens when I type a URL into my browser, at a high level.",
])

b.add("short-code", "en", [
    "Write a Python function that checks whether a string is a palindrome, ignoring spaces and case.",
    "Write a JavaScript function that debounces another function by 300 ms.",
    "In Python, how do I read a CSV file and compute the average of the 'price' column without pandas?",
    "Write a Rust function that returns the n-th Fibonacci number iteratively.",
    "Write a bash script that renames every .jpeg file in a folder to .jpg.",
    "Give me a Python class for a simple stack with push, pop, peek and is_empty.",
    "Write a Go function that reverses a slice of ints in place.",
    "How do I make an HTTP GET request in Python and parse the JSON response?",
    "Write a TypeScript type for a user with id, name, optional email and a list of roles.",
    "Write a function in C that counts the vowels in a string.",
    "Convert this loop to a list comprehension: result = []\nfor x in nums:\n    if x % 2 == 0:\n        result.append(x * x)",
    "Write a small Flask endpoint that returns the current server time as JSON.",
    "Write a Python function that flattens a nested list like [1, [2, [3, 4]], 5].",
    "Show me how to sort a list of dictionaries by the 'age' key in Python, descending.",
    "Write a Java method that checks if a number is prime.",
    M("Now add type hints and a docstring to it.",
      history=["Write a Python function that returns the word count of a text.",
               "def word_count(text):\n    return len(text.split())"]),
    M("Write a function that looks up the weather for a city and returns a one-line summary.", tools=True),
    "Write a React component that shows a counter with + and - buttons.",
])

b.add("sql", "en", [
    "Write a SQL query that returns the top 5 customers by total order amount from tables customers(id, name) and orders(id, customer_id, amount).",
    "How do I find duplicate email addresses in a users table with SQL?",
    "Write a PostgreSQL query that counts signups per day for the last 30 days.",
    "What's the difference between INNER JOIN and LEFT JOIN? Show a small example.",
    "Write a SQL query to get the second highest salary from an employees table.",
    "How do I delete all rows older than 90 days from a logs table with a created_at column?",
    "Write a query that lists products that have never been ordered, using products and order_items tables.",
    "Create a table for blog posts with id, title, body, author_id, created_at and a foreign key to users.",
    "Explain what GROUP BY and HAVING do, with an example query.",
    "Write a SQL query for the running total of sales by month.",
])

b.add("writing", "en", [
    "Write a short cover letter for a junior data analyst position at a logistics company. I know Excel, SQL and some Python.",
    "Draft a polite email to my landlord asking to fix a leaking kitchen tap that's been dripping for two weeks.",
    "Write a 150-word product description for a bamboo cutting board.",
    "Write a LinkedIn post announcing that I've started a new job as a UX designer at Finch Health.",
    "Write a short speech (2 minutes) for my best friend's wedding. We met at university and went hiking together a lot.",
    "Write an out-of-office message for two weeks of parental leave, pointing people to my colleague Sam.",
    "Write a short story of about 300 words about a lighthouse keeper who finds a message in a bottle.",
    "Draft a friendly reminder email to a client whose invoice is 15 days overdue.",
    "Write a haiku sequence of three haikus about autumn in a city.",
    "Write a job posting for a part-time barista at a small café.",
    "Write a thank-you note to my team after we shipped a big release on time.",
    "Write an outline for a five-paragraph essay on whether homework should be banned in primary schools.",
    M("Make it a bit more formal and add a sentence about my availability next week.",
      history=["Write a short email asking my manager for a one-on-one to discuss my career goals.",
               "Hi Jordan, could we find 30 minutes for a one-on-one? I'd love to talk about my career goals and how I can grow here. Thanks!"]),
    M("Write a 200-word blog intro about starting a vegetable garden on a balcony.", max_tokens=400),
])

b.add("compare", "en", [
    "Should I learn Python or JavaScript first if I want to eventually build web apps?",
    "Compare renting vs buying a home in a few bullet points each.",
    "What are the pros and cons of electric cars versus hybrids for someone who drives 60 km a day?",
    "Compare PostgreSQL and MongoDB for a small e-commerce site.",
    "iPad or a cheap laptop for a university student who mostly takes notes and writes essays?",
    "What's the difference between a Roth IRA and a traditional IRA, briefly?",
    "Compare REST and GraphQL in a short table.",
    "Kindle or paper books: what are the main trade-offs?",
    "Is it better to pay off my student loan faster or invest the extra money? Give the main considerations.",
    "Compare Docker and virtual machines in a few sentences.",
])

b.add("howto", "en", [
    "How do I set up SSH keys for GitHub on a Mac?",
    "Give me a 4-week beginner running plan to get to 5 km.",
    "How do I make a basic sourdough starter from scratch?",
    "Plan a 3-day itinerary for Lisbon on a budget.",
    "How do I change a flat tire on a bicycle?",
    "What's a simple weekly meal plan for a vegetarian on a budget? Include a shopping list.",
    "How do I create a pivot table in Excel to sum sales by region?",
    "How can I improve my sleep? Give me practical steps I can start tonight.",
    "Steps to prepare for a job interview at a tech company next week.",
    "How do I back up my iPhone to my computer without iCloud?",
    "Give me a study plan to learn basic Spanish in three months with 30 minutes a day.",
    "How do I set up a Python virtual environment and install requirements from a file?",
    M("Book me a table for two at an Italian place near the office on Friday at 7.", tools=True),
])

b.add("regex-shell", "en", [
    "Write a regex that matches a valid email address (reasonably, not the full RFC).",
    "What's the regex for a US phone number like (555) 123-4567 or 555-123-4567?",
    "How do I find all files larger than 100 MB in my home directory on Linux?",
    "Give me a one-liner to count lines of code in all .py files in a project.",
    "How do I kill the process listening on port 3000 on macOS?",
    "Write a cron expression for every weekday at 6:30 am.",
    "How do I replace 'foo' with 'bar' in every .txt file in a folder using sed?",
    "Regex to extract all hashtags from a tweet.",
    "How can I see which Git branches are merged into main and delete them?",
    "Write a find command that deletes empty directories.",
])

b.add("word-problem", "en", [
    "A train travels 240 km in 3 hours, then 150 km in 2 hours. What's its average speed for the whole trip?",
    "If a shirt costs $40 after a 20% discount, what was the original price? Show the steps.",
    "A recipe for 4 people needs 300 g of flour and 2 eggs. How much do I need for 10 people?",
    "Sarah is twice as old as Tom. In 5 years, the sum of their ages will be 40. How old are they now?",
    "What's the probability of rolling two dice and getting a sum of 7? Explain.",
    "A tank fills in 6 hours with one pipe and 3 hours with another. How long with both?",
    "I invest $5,000 at 4% per year compounded monthly. How much will I have after 3 years?",
    "A rectangle's length is 3 cm more than its width, and its area is 70 cm². Find its dimensions.",
    "If I drive 15,000 km a year and my car uses 6.5 L per 100 km at 1.80 per litre, what do I spend on fuel per year?",
    "Solve for x: 3(x - 4) + 2 = 5x - 8, and check the answer.",
])

b.add("advice", "en", [
    "My coworker keeps taking credit for my ideas in meetings. How should I handle it?",
    "I have $500 a month to save. How should I split it between an emergency fund and retirement?",
    "How do I tell my friend I can't afford to go on the trip we planned without making it awkward?",
    "What should I look for when adopting a rescue dog for a small apartment?",
    "I'm nervous about giving a presentation to 50 people next week. Any tips?",
    "How can I get better at saying no to extra work without seeming lazy?",
    "What are some good ways to keep a toddler busy on a 6-hour flight?",
    "I want to switch careers from teaching to instructional design. Where do I start?",
])

b.add("data-format", "en", [
    "Convert this JSON to YAML:\n{\"name\": \"app\", \"version\": 2, \"deps\": [\"a\", \"b\"], \"env\": {\"debug\": true}}",
    "Turn this list into a Markdown table with columns Name, Role, Start date:\nAna - designer - 2021-03-01\nBen - engineer - 2019-07-15\nChloe - PM - 2022-01-10",
    "Write a JSON schema for an object with a required string 'id', an optional integer 'count' >= 0 and an array of string tags.",
    "Parse this log line and give me the fields as JSON: 2024-05-01T12:03:44Z ERROR payment-service timeout after 3000ms order=8812",
    "Convert this CSV to a JSON array of objects:\nid,name,price\n1,pen,1.20\n2,notebook,3.50",
    "Write an OpenAPI snippet for GET /users/{id} returning a user with id and name.",
    "Create a .gitignore for a Node.js project that uses a .env file and builds into dist/.",
    "Write a docker-compose.yml with a Postgres 16 database and a web service on port 8000 that depends on it.",
])

SEEDS = b.seeds
