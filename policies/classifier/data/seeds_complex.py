"""Hand-written English seeds for the `complex` tier: reasoning and puzzles, proofs, algorithms,
research-level science, and medical, legal and financial analysis.
"""

from seedlib import Book, M

b = Book("complex")

b.add("proof", "en", [
    "Prove that there are infinitely many primes congruent to 3 mod 4.",
    "Prove that sqrt(2) + sqrt(3) is irrational.",
    "Show that every group of order p^2, with p prime, is abelian.",
    "Prove that a continuous function on [a, b] is uniformly continuous.",
    "prove that the harmonic series diverges but the sum of 1/n^2 converges, and explain why the integral test works",
    "Prove that for every n >= 1, the number of partitions of n into distinct parts equals the number of partitions of n into odd parts.",
    "Let f: R -> R satisfy f(x + y) = f(x) + f(y) for all x, y and be continuous at 0. Prove f(x) = cx.",
    "Prove that in any graph, the number of vertices of odd degree is even. Then prove that every tree with at least two vertices has at least two leaves.",
    "Show that the set of real numbers is uncountable, and explain precisely where the diagonal argument would fail if we tried it on the rationals.",
    "Prove that if p is an odd prime, then -1 is a quadratic residue mod p if and only if p ≡ 1 (mod 4).",
    "Prove that every bounded monotone sequence of real numbers converges. Which axiom of the reals are you using, and where exactly?",
    "Let a, b, c be positive reals with abc = 1. Prove that a/(b+c) + b/(c+a) + c/(a+b) >= 3/2.",
    "Prove that the number of spanning trees of the complete graph K_n is n^(n-2). Any proof is fine, but I'd like to understand the Prüfer code bijection in detail.",
    "Prove that a finite integral domain is a field.",
    "Show that the sequence x_{n+1} = (x_n + 2/x_n)/2 with x_0 = 1 converges to sqrt(2) and estimate the rate of convergence.",
    "Prove Fermat's little theorem in two different ways: once with group theory and once combinatorially (counting necklaces).",
    "Prove that any 2-coloring of the edges of K_6 contains a monochromatic triangle, and show K_5 doesn't suffice.",
    "Let A be an n×n real symmetric matrix. Prove that its eigenvalues are real and that eigenvectors for distinct eigenvalues are orthogonal.",
    "Is it true that every continuous function from [0,1] to [0,1] has a fixed point? Prove it or give a counterexample; then discuss what changes for the open interval (0,1).",
    "Prove that the product of any four consecutive integers plus one is a perfect square.",
    "Prove that e is irrational.",
    "Prove that the Cantor set has measure zero but is uncountable, and that it is homeomorphic to {0,1}^N.",
    "Prove by induction that the n-th Fibonacci number satisfies F(n) < 2^n, then find and prove the tightest exponential bound you can.",
])

b.add("reasoning", "en", [
    "Three boxes are labelled 'apples', 'oranges' and 'mixed', and every label is wrong. You may pick one fruit from one box without looking inside. How do you relabel all boxes correctly? Then generalize: with n boxes and a derangement of labels, what's the minimum number of draws?",
    "A 100-prisoner puzzle: each prisoner must find their own number among 100 boxes, opening at most 50. Explain the cycle-following strategy, derive its success probability (~31%), and explain why it's so much better than random.",
    "You have 12 coins, one is counterfeit and either heavier or lighter. With a balance scale and exactly three weighings, find the coin and whether it's heavier or lighter. Give the full decision tree.",
    "Two trains leave cities 300 km apart at 9:00 heading toward each other at 70 km/h and 80 km/h. A bird flies back and forth between them at 120 km/h until they meet. How far does the bird fly? Then: if the bird needs 10 seconds to turn around each time, how many times does it turn before the trains meet, approximately, and does the total distance change much?",
    """Five people — Ada, Bo, Cy, Di, Ed — sit in a row of five chairs. Ada isn't at either end. Bo sits immediately to the right of Cy. Di is not next to Ada. Ed sits at the left end or next to Bo. How many arrangements satisfy all the constraints? Show your reasoning, not just the number.""",
    "In the Monty Hall problem, suppose the host doesn't know where the car is and opens a door at random, which happens to reveal a goat. Should you switch now? Explain carefully why this differs from the standard version.",
    "A company's revenue grew 20% in year 1, fell 20% in year 2, and grew 10% in year 3. The CEO says 'we're up 10% over three years'. Is that right? Then explain when average growth rates should be arithmetic vs geometric, and what the compound annual growth rate was.",
    "Is it possible to tile an 8×8 chessboard with two opposite corners removed using 31 dominoes? What if you remove two squares of different colours — is a tiling always possible? Prove your answers.",
    "A disease affects 1 in 1,000 people. A test has 99% sensitivity and 95% specificity. A person tests positive, then tests positive again on an independent second test. What's the probability they have the disease? And what assumption about 'independent' is doing a lot of work here?",
    "We have 25 horses and a track that fits 5 at a time, no stopwatch. What's the minimum number of races to find the fastest 3? Prove that fewer races can't work.",
    "Explain why the two-envelope paradox seems to say you should always switch, and where exactly the argument goes wrong. Does the answer change if the amount distribution is unbounded with infinite expectation?",
    "I'm planning a 7-day trip with 4 cities (Rome, Florence, Venice, Milan), train times between each pair, each city needs at least 1 night, Florence and Venice need 2 each, and I fly in and out of Rome. Flights back are only on days 7 and 8. Figure out the feasible itineraries and argue which is best if I hate travelling more than 3 hours in a day. Train times: Rome-Florence 1.5h, Florence-Venice 2h, Venice-Milan 2.5h, Milan-Rome 3h, Rome-Venice 4h, Florence-Milan 2h.",
    "A lily pad doubles in size every day and covers the whole pond on day 48. On what day did it cover a quarter? Easy — now the real question: if there are two lily pads starting on day 0 instead of one, on what day is the pond covered, and what does this puzzle teach about exponential growth intuitions in epidemics?",
    "Knights always tell the truth and knaves always lie. A says: 'B and C are the same type.' B says: 'A is a knave or C is a knight.' C says nothing. Determine everything that can be determined, and show the case analysis.",
    "Our startup has to pick between three offers: A) $2M at $10M pre-money with a 1x non-participating preference, B) $2.5M at $9M pre with a 1x participating preference capped at 3x, C) $1.5M SAFE with a $12M cap and 20% discount. Reason through founder outcomes at exits of $8M, $30M and $150M, and explain which offer is better under which beliefs.",
    "How many ways can you climb a staircase of 30 steps if you can take 1, 2 or 3 steps at a time but never two 3-steps in a row? Derive a recurrence, justify it, and compute the answer.",
    "You're given a fair coin. Design a procedure to simulate a fair 7-sided die with the minimum expected number of flips, and compute that expectation. Can you do better by reusing leftover randomness?",
    "Sam is twice as old as Alex was when Sam was as old as Alex is now. When Alex is as old as Sam is now, their ages will sum to 63. How old are they? Set it up carefully — I always get these wrong.",
    "Why doesn't it follow from 'most car accidents happen within 5 miles of home' that driving near home is more dangerous? Walk through the base-rate reasoning, and give two other real-world statistics that fall into the same trap.",
])

b.add("algorithms", "en", [
    "Design an algorithm to find the median of two sorted arrays of sizes m and n in O(log(min(m, n))) time. Prove correctness and handle the edge cases.",
    "Given a stream of up to 10^9 integers and 1 MB of memory, estimate the number of distinct values within 2% error. Explain HyperLogLog from first principles, including why the harmonic mean is used and the small-range correction.",
    "Give an algorithm to detect whether a directed graph with 10^6 nodes and 10^7 edges has a cycle, and if so return one cycle. Then: how would you do it if the graph doesn't fit in memory and is stored as an edge list on disk?",
    "What's the fastest way to find the k most frequent words in a 200 GB log file on one machine with 16 GB RAM? Compare exact approaches (external sort, hash partitioning) with approximate ones (Count-Min Sketch + heap, Space-Saving), with complexity and error bounds.",
    "Design a data structure that supports insert, delete, getRandom (uniform) and getMedian, all in O(log n) or better. Analyze each operation.",
    "Explain why Dijkstra's algorithm fails with negative edge weights, even without negative cycles, using a concrete 4-node counterexample. Then explain how Johnson's algorithm fixes this for all-pairs shortest paths and its complexity.",
    "I need to schedule n jobs with deadlines and processing times on one machine to minimize the number of late jobs. Is this NP-hard? If not, give the algorithm (Moore-Hodgson?) and prove it's optimal.",
    "Give a linear-time algorithm to find the longest palindromic substring (Manacher's algorithm). Explain the invariant well enough that I could reimplement it from memory, and prove the O(n) bound.",
    "How would you implement a rate limiter that allows bursts (token bucket) in O(1) memory per key, and how do you make it exact under concurrent access without a global lock? Compare with sliding-window log and sliding-window counter in accuracy and memory.",
    "Given n points in the plane, find the closest pair in O(n log n). Prove that only a constant number of points need to be checked in the strip, and give the exact constant you can justify.",
    "Design an algorithm for the 'meeting rooms' problem where each meeting can be moved by up to 15 minutes earlier or later to reduce the number of rooms needed. Is the exact problem tractable? If not, what's a good approximation or heuristic and how would you evaluate it?",
    """Here's my solution to 'count inversions in an array' but it times out for n = 10^6. Can you explain why it's O(n^2) in the worst case, give an O(n log n) solution, and prove the merge step counts correctly?

```python
def inversions(a):
    sorted_part = []
    count = 0
    for x in a:
        i = bisect.bisect_right(sorted_part, x)
        count += len(sorted_part) - i
        sorted_part.insert(i, x)
    return count
```""",
    "What's the time complexity of building a heap bottom-up, and why is it O(n) rather than O(n log n)? Give the summation and a tight argument, and explain why the same trick doesn't make heapsort linear.",
    "Design a suffix-array-based algorithm to find the longest substring that appears at least k times in a string of length 10^7. Include how you'd construct the suffix array and LCP array and the overall complexity.",
    "Explain how to solve 2-SAT in linear time via strongly connected components, prove why a variable and its negation in the same SCC means unsatisfiable, and show how to extract an assignment.",
    "Compare B-trees and LSM-trees for a write-heavy workload with occasional range scans. Give the write amplification, read amplification and space amplification of each under leveled and tiered compaction, with the math.",
])

b.add("science", "en", [
    "Why does the Higgs mechanism give mass to the W and Z bosons but not the photon? Explain in terms of symmetry breaking of SU(2)×U(1), at the level of a first-year grad student.",
    "What's the current evidence for and against the hypothesis that the Hubble tension is due to systematic errors in the Cepheid distance ladder rather than new physics? Summarize the main measurements (SH0ES, TRGB, JWST, Planck) and where the disagreement stands.",
    "Explain how CRISPR base editors differ mechanistically from prime editors, what kinds of mutations each can and can't correct, and the main sources of off-target effects for each.",
    "Why is the specific heat of a 2D electron gas in graphene linear in temperature while a 3D phonon gas goes as T^3? Derive both from the density of states.",
    "Our lab sees a 15% drop in catalytic yield when we scale a palladium-catalysed Suzuki coupling from 1 g to 100 g. Same conditions on paper. What are the likely causes (mixing, heat transfer, oxygen ingress, catalyst loading per surface area?) and what experiments would you run to distinguish them?",
    "Explain the measurement problem in quantum mechanics and compare how the Copenhagen, many-worlds and pilot-wave interpretations handle a Stern-Gerlach experiment. Which of them make different empirical predictions, if any?",
    "How do we know the age of the universe is about 13.8 billion years? Walk through the chain of inference from CMB measurements and the ΛCDM model, and what independent checks (oldest stars, white dwarf cooling) constrain it.",
    "Why does adding salt to water lower its freezing point? Derive the cryoscopic constant from chemical potential arguments, and explain why the effect depends on the number of dissolved particles and not their identity.",
    "In protein folding, why did AlphaFold2 succeed where decades of physics-based methods struggled? What exactly does it learn from MSAs, what are its known failure modes (disordered regions, multimers, conformational changes), and what does it not tell us about folding pathways?",
    "Explain why the Navier-Stokes existence and smoothness problem is hard. What's known in 2D vs 3D, what's the role of the vorticity stretching term, and what would a blow-up solution have to look like?",
    "Design an experiment to test whether a new soil bacterium increases drought tolerance in wheat, controlling for nutrient effects of the inoculum itself. Include the statistical design, sample size reasoning and confounders.",
    "How does a lithium-ion battery degrade over cycling? Explain SEI growth, lithium plating, and cathode cracking, how temperature and charge rate affect each, and which ones fast-charging protocols try to avoid.",
    "What is the sign problem in quantum Monte Carlo, why is it thought to be NP-hard in general, and what workarounds exist for specific models like the Hubbard model at half filling?",
    "Explain why the mitochondrial genome is inherited maternally in most animals, what the known exceptions are, and what evolutionary hypotheses explain uniparental inheritance of organelles.",
])

b.add("medical", "en", [
    "54-year-old man, 3 days of fever 38.9°C, productive cough, right-sided pleuritic chest pain, HR 112, RR 24, SpO2 91% on room air, BP 104/62, confused this morning. WBC 17k, urea 8.9 mmol/L. Walk through the differential, severity scoring (CURB-65), what you'd want to rule out, and the initial management reasoning. This is for a case discussion, not a real patient.",
    """Interpret these trial results for me. A phase 3 RCT of a new anticoagulant vs warfarin in atrial fibrillation, n = 14,200, median follow-up 1.9 years. Primary endpoint (stroke or systemic embolism): 1.21%/yr vs 1.50%/yr, HR 0.79 (95% CI 0.66-0.96), non-inferiority margin 1.38, p < 0.001 for non-inferiority, p = 0.02 for superiority. Major bleeding: 3.6%/yr vs 3.4%/yr. Intracranial haemorrhage: 0.26%/yr vs 0.76%/yr. Time in therapeutic range for warfarin was 55%. Is it actually better than warfarin? What's the NNT, how does the TTR affect the interpretation, and what would you tell a patient?""",
    "A 28-year-old woman presents with fatigue, weight gain, and irregular periods. TSH 6.8 mIU/L, free T4 normal, anti-TPO positive. She wants to get pregnant in the next year. Discuss whether to treat subclinical hypothyroidism in this context, what the evidence says about pregnancy outcomes, and target TSH levels.",
    "Explain the reasoning behind the choice between SGLT2 inhibitors and GLP-1 receptor agonists as second-line therapy in type 2 diabetes for a patient with heart failure with reduced ejection fraction and CKD stage 3a. Cite the key trials and their endpoints.",
    "A 70-year-old on apixaban, amiodarone and simvastatin 40 mg develops muscle pain and dark urine. Reason through the likely interaction, what labs you'd order, and how you'd adjust therapy. For teaching purposes.",
    "A meta-analysis shows a vitamin D supplement reduces fractures (RR 0.85), but the largest individual RCT showed no effect. How can both be true? Walk through heterogeneity, small-study effects, baseline vitamin D levels and how you'd decide what to recommend.",
    "Differential diagnosis for a 6-year-old with 5 days of fever, bilateral non-purulent conjunctivitis, cracked red lips, a polymorphous rash and swollen hands. What are the must-not-miss diagnoses, how do you distinguish Kawasaki disease from MIS-C and from scarlet fever, and what investigations change management?",
    "Why do we still see a mortality benefit from beta-blockers after myocardial infarction in old trials but not in modern ones like REDUCE-AMI? Discuss the change in background therapy, reperfusion, and trial design.",
    "My father (78) was diagnosed with stage II prostate cancer, Gleason 3+4, PSA 8.2. The urologist offered active surveillance, radiotherapy or surgery. Can you lay out the trade-offs between these options using what's known from ProtecT and other trials, so we can have a better conversation with the doctor?",
    "Interpret this ABG: pH 7.31, PaCO2 28 mmHg, HCO3 14 mmol/L, Na 138, Cl 100, albumin 40 g/L. Then the patient's glucose is 31 mmol/L and ketones high. Work through the anion gap, delta ratio, and whether there's a mixed disorder.",
    "How should a hospital evaluate a sepsis-prediction algorithm from a vendor before deployment? Think about the Epic Sepsis Model controversy: what validation data, metrics (AUROC vs PPV at operating threshold), alert fatigue and equity checks would you require?",
])

b.add("legal", "en", [
    """Compare how this limitation of liability clause would likely be treated under English law and under German law (BGB, AGB-Kontrolle), assuming it's in the standard terms of a B2B SaaS contract:

"Supplier's total aggregate liability arising out of or in connection with this Agreement, whether in contract, tort (including negligence) or otherwise, shall not exceed the fees paid by Customer in the twelve (12) months preceding the event giving rise to the claim. In no event shall Supplier be liable for any indirect or consequential loss, loss of profits, loss of data or loss of goodwill."

Which parts are at risk of being unenforceable in each jurisdiction, and how would you redraft it to survive German AGB review?""",
    "Explain the difference between a condition, a warranty and an innominate term in English contract law, using Hong Kong Fir and Bunge v Tradax, and how a court decides whether a breach entitles termination. Then contrast with the 'fundamental breach' concept under the CISG.",
    "We're a US startup with EU customers. Our DPA says we use AWS us-east-1. After Schrems II and the EU-US Data Privacy Framework, what do we actually need (SCCs, TIAs, DPF certification), what happens if DPF is struck down, and what supplementary measures are realistic for a 20-person company?",
    "Analyse whether a non-compete clause (12 months, whole EU, no compensation) in an employment contract for a software engineer based in Munich would be enforceable, and compare with how the same clause would fare in California and in England.",
    """A supplier's contract with us says: "Force Majeure: Neither party shall be liable for delay caused by events beyond its reasonable control, including acts of God, war, strikes, epidemics, or governmental action." They're now refusing to deliver because their energy costs tripled after a regulatory change. We're in New York, governing law is New York. Do they have a force majeure defence? What about commercial impracticability under the UCC? What should we argue?""",
    "Is training a machine learning model on copyrighted books fair use in the US? Walk through the four factors as they'd likely apply, discuss the relevant cases (Authors Guild v Google, Warhol v Goldsmith, the recent AI cases), and contrast with the EU text-and-data-mining exceptions in the DSM Directive.",
    "Explain how the open-source licences GPL-3.0, AGPL-3.0, MPL-2.0 and Apache-2.0 interact if we statically link an MPL library and an Apache library into a proprietary SaaS backend that also calls an AGPL service over the network. What obligations trigger where?",
    "Our landlord in Paris wants to increase the commercial lease rent by 25% at the three-year review. What rules on revision triennale and the plafonnement apply under French commercial lease law, and what are our options to contest it?",
    "Compare director liability for insolvent trading/wrongful trading in the UK (Insolvency Act 1986 s214), Australia (s588G Corporations Act) and Germany (InsO §15b). When does the duty kick in, what defences exist, and what should a director of a struggling startup do differently in each?",
    """Please analyse this indemnity clause from a vendor agreement and tell me what risks it creates for us as the customer, whether it's mutual in substance, and what we should push back on:

"Customer shall indemnify, defend and hold harmless Vendor and its affiliates, officers, employees and agents from and against any and all claims, losses, damages, liabilities, costs and expenses (including reasonable attorneys' fees) arising out of or relating to (a) Customer Data; (b) Customer's use of the Services; (c) any breach of this Agreement by Customer. Vendor shall indemnify Customer against third-party claims that the Services, as provided by Vendor, infringe a United States patent issued as of the Effective Date, provided that Customer promptly notifies Vendor and Vendor has sole control of the defence and settlement."

Governing law is Delaware.""",
    "Under the EU AI Act, would a CV-screening tool that ranks job applicants be 'high-risk'? What obligations fall on us as the provider versus our customers as deployers, and what's the timeline for compliance?",
])

b.add("financial", "en", [
    """Build a DCF valuation for a mid-size SaaS company with these assumptions: current ARR $48M, growing 35% next year, decaying linearly to 8% by year 7; gross margin 78%; operating margin -5% today, reaching 25% by year 7; capex 3% of revenue; working capital negligible; tax 24% once profitable (with $60M NOLs); WACC 11%; terminal growth 3%. Walk through the calculation year by year, give the enterprise value, and then do a sensitivity table on WACC (9-13%) and terminal growth (2-4%). Also tell me which assumption the value is most sensitive to and whether 3% terminal growth is defensible.""",
    "I hold a portfolio of 60% global equities, 30% government bonds and 10% gold. Estimate the portfolio's annual volatility and 95% one-year VaR, explain which correlation assumptions matter most (the 2022 equity-bond correlation flip), and how the answer changes under a stress scenario like 2022.",
    "Explain why a company with growing net income can have shrinking free cash flow, using a worked example with receivables, inventory and capitalized software costs. What red flags in the cash flow statement would make you suspect earnings management?",
    "Compare the risk-return profile of a covered-call ETF on the S&P 500 versus simply holding the index plus cash. Why do covered calls underperform in strong bull markets, what's the implied short volatility exposure, and when might the strategy make sense?",
    "We're a company with €200M revenue and 30% of costs in USD, revenue all in EUR. Design a hedging policy: what to hedge, with which instruments (forwards, options, collars), over what horizon, and how to evaluate whether it's working without just looking at hedge P&L.",
    "Walk me through an LBO model for a business with €50M EBITDA bought at 10x with 60% debt (a 5.5x senior term loan at 7% and a 0.5x second lien at 11%), EBITDA growth 6%/yr, exit at 9x after 5 years, capex 4% of revenue, revenue €300M. Compute the equity IRR and MOIC and tell me which lever (entry multiple, leverage, growth, exit multiple) drives most of the return.",
    "Should I pay off my 3.1% fixed mortgage early or invest the extra €800/month in a global index fund, given I'm 38, in Germany, with a 20-year horizon? Give the reasoning, including taxes (Abgeltungsteuer, Vorabpauschale), risk, liquidity, and the behavioural side — not just the expected-return comparison.",
    "A bank has a portfolio of 10,000 fixed-rate mortgages funded by short-term deposits. Rates rise 300bp over a year. Explain the NII and EVE impacts, how prepayment and deposit beta assumptions change the picture, and what went wrong at SVB in these terms.",
    "How do you value a pre-revenue biotech with one drug in phase 2? Build a risk-adjusted NPV with stage-wise probability of success, launch timeline, peak sales ramp and patent cliff, and discuss what discount rate to use given the probabilities are already in the cash flows.",
    "Our startup has $4.2M in the bank, burn of $310k/month growing 3% a month, and revenue of $90k/month growing 9% a month. When do we run out of money, when would we hit break-even if ever, and how much should we raise now vs in 12 months? Model it and explain.",
    "Explain the Black-Scholes assumptions that break down for short-dated options on meme stocks, how the volatility smile reflects that, and how market makers hedge gamma in a squeeze. Use the GameStop episode as the example.",
])

b.add("reasoning", "en", [
    M("OK, but now suppose there are 13 coins instead of 12, same three weighings. Can you still always find the counterfeit? And if not, what's the best you can guarantee? Prove it.",
      history=["You have 12 coins, one is counterfeit and heavier or lighter. Three weighings — how do you find it?",
               "Split into three groups of four: A, B, C. Weigh A against B. If they balance, the fake is in C and A, B are genuine; weigh three coins from C against three genuine coins to learn whether the fake is heavy or light, then weigh two of those to isolate it, or identify the fourth coin. If A and B don't balance, the fake is among those eight and you know which side was heavy; then you rotate coins between the pans in the second weighing so that each outcome narrows the candidates to at most three, and the third weighing settles it."]),
])

b.add("proof", "en", [
    M("Your proof uses Dirichlet's theorem, which feels like cheating. Can you give a self-contained elementary proof for primes ≡ 1 mod 4 too? I think it uses quadratic residues.",
      history=["Are there infinitely many primes of the form 4k+1 and 4k+3?",
               "Yes, both. This follows from Dirichlet's theorem on primes in arithmetic progressions: for coprime a and m, there are infinitely many primes congruent to a mod m. For 4k+3 there's also an easy Euclid-style proof: suppose p1,...,pn are all such primes, and consider N = 4·p1···pn − 1; N ≡ 3 mod 4, so it has a prime factor ≡ 3 mod 4, which can't be any pi."]),
])

b.add("legal", "en", [
    M("Right. Now assume the customer is a consumer in Spain, not a business. How does that change the analysis of the same clause, and does the Unfair Contract Terms Directive override the choice of English law?",
      history=["Is a clause capping liability at 12 months of fees enforceable in English law in a B2B SaaS contract?",
               "Generally yes, subject to the reasonableness test in the Unfair Contract Terms Act 1977 where the clause is in standard terms. Courts consider bargaining power, whether the customer could insure, and whether the cap is realistic relative to likely losses. Liability for death or personal injury caused by negligence, and for fraud, can't be excluded. Caps tied to fees are commonly upheld between commercial parties of similar size."]),
])

SEEDS = b.seeds
