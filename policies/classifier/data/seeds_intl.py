"""Hand-written seeds in German, French, Spanish, Portuguese, Italian, Chinese and Japanese, for all three
tiers. The tiers mean what they mean in English: the language of a prompt never makes it harder.
"""

from seedlib import Book, M

simple = Book("simple")
standard = Book("standard")
complex = Book("complex")

# German
simple.add("chit-chat", "de", [
    "Hallo! Wie geht's dir heute?",
    "Danke, das hat mir sehr geholfen!",
    "Erzähl mir einen Witz über Programmierer.",
    "Guten Morgen :)",
])
simple.add("lookup", "de", [
    "Was ist die Hauptstadt von Kanada?",
    "Wann wurde die Berliner Mauer gebaut?",
    "Wie viele Einwohner hat München ungefähr?",
    "Wer hat 'Faust' geschrieben?",
])
simple.add("translation", "de", [
    "Übersetze ins Englische: 'Ich komme heute etwas später ins Büro.'",
    "Was heißt 'Feierabend' auf Englisch?",
])
simple.add("rewrite", "de", [
    "Formuliere das höflicher: 'Schick mir endlich die Rechnung.'",
    "Korrigiere die Rechtschreibung: 'Ich habe gestern einen schönen Tag gehabt, aber das Wetter war schlecht und ich bin nas geworden.'",
])
simple.add("arithmetic", "de", [
    "Was ist 15 % von 240?",
    "Wie viel sind 3,5 Stunden in Minuten?",
])
standard.add("writing", "de", [
    "Schreib eine kurze, freundliche E-Mail an meinen Vermieter, dass die Heizung seit drei Tagen nicht funktioniert.",
    "Schreib ein kurzes Anschreiben für eine Bewerbung als Werkstudentin im Marketing.",
])
standard.add("explain", "de", [
    "Erkläre mir den Unterschied zwischen Brutto- und Nettogehalt in Deutschland, mit einem Beispiel.",
    "Wie funktioniert eine Wärmepumpe? Bitte verständlich für Laien.",
])
standard.add("short-code", "de", [
    "Schreib eine Python-Funktion, die prüft, ob ein Jahr ein Schaltjahr ist.",
])
complex.add("system-design", "de", [
    "Entwirf eine Architektur für ein mandantenfähiges Abrechnungssystem mit Kafka und PostgreSQL, das genau-einmal-Verarbeitung von Zahlungen garantiert. Erkläre Idempotenz, Outbox-Pattern und was bei einem Netzwerkausfall zwischen den Rechenzentren passiert.",
    "Wir betreiben einen Kubernetes-Cluster mit 80 Knoten. Nach einem Upgrade auf 1.29 schlagen sporadisch DNS-Abfragen fehl (etwa 1 von 300). Wie gehst du bei der Fehlersuche systematisch vor, welche Hypothesen prüfst du zuerst und mit welchen Werkzeugen?",
])
complex.add("proof", "de", [
    "Beweise, dass es unendlich viele Primzahlen gibt, und erkläre dann, warum der gleiche Beweis nicht zeigt, dass es unendlich viele Primzahlzwillinge gibt.",
    "Zeige, dass jede stetige Funktion auf einem kompakten Intervall ihr Maximum annimmt. Welche Eigenschaften der reellen Zahlen werden dabei benutzt?",
])
complex.add("legal", "de", [
    "Vergleiche die Haftung eines GmbH-Geschäftsführers nach deutschem Recht mit der eines Directors einer englischen Limited bei Insolvenzverschleppung. Welche Pflichten bestehen, und wo liegen die praktischen Unterschiede?",
    "Ein Mitarbeiter hat vor seiner Kündigung Kundendaten auf einen privaten USB-Stick kopiert. Analysiere die arbeitsrechtlichen und datenschutzrechtlichen Folgen nach DSGVO und BDSG und welche Schritte das Unternehmen jetzt einleiten sollte.",
])
complex.add("financial", "de", [
    "Analysiere, ob sich für eine vierköpfige Familie mit 90.000 € Bruttoeinkommen der Kauf einer Wohnung für 450.000 € in Leipzig lohnt, verglichen mit Miete und ETF-Sparplan. Berücksichtige Zinsen, Nebenkosten, Steuern und Risiken über 20 Jahre.",
])
complex.add("reasoning", "de", [
    "Drei Freunde teilen sich eine Rechnung, aber einer zahlt falsch... Formuliere das klassische Rätsel vom 'verschwundenen Euro', löse es sauber und erkläre präzise, wo der Denkfehler liegt.",
])
complex.add("code-review", "de", [
    """Bitte prüfe diesen Go-Code auf Nebenläufigkeitsfehler und schlage eine korrigierte Version vor:

```go
type Cache struct { m map[string]string }
func (c *Cache) Get(k string) string { return c.m[k] }
func (c *Cache) Set(k, v string) { go func() { c.m[k] = v }() }
```
Erkläre auch, wie du das mit dem Race Detector nachweisen würdest.""",
])

# French
simple.add("chit-chat", "fr", [
    "Salut ! Ça va ?",
    "Merci beaucoup pour ton aide !",
    "Raconte-moi une blague courte.",
])
simple.add("lookup", "fr", [
    "Quelle est la capitale de l'Australie ?",
    "Qui a écrit Les Misérables ?",
    "En quelle année a eu lieu la Révolution française ?",
    "Combien de départements y a-t-il en France ?",
])
simple.add("translation", "fr", [
    "Traduis en anglais : « Je voudrais réserver une table pour deux personnes ce soir. »",
    "Comment dit-on « bonne chance » en espagnol ?",
])
simple.add("rewrite", "fr", [
    "Corrige les fautes : « Je suis aller au marcher hier et j'ai acheter des pommes. »",
    "Rends ce message plus poli : « Envoie-moi le fichier maintenant. »",
])
simple.add("arithmetic", "fr", [
    "Combien font 12 fois 17 ?",
    "Convertis 5 miles en kilomètres.",
])
standard.add("writing", "fr", [
    "Écris une lettre de motivation courte pour un poste de stagiaire en communication dans une ONG.",
    "Rédige un e-mail pour reporter une réunion de mardi à jeudi, en restant professionnel.",
])
standard.add("explain", "fr", [
    "Explique la différence entre une SARL et une SAS en France, en quelques paragraphes.",
    "Comment fonctionne la photosynthèse ? Explique-le à un élève de collège.",
])
standard.add("sql", "fr", [
    "Écris une requête SQL qui donne le nombre de commandes par client, triées par ordre décroissant.",
])
complex.add("system-design", "fr", [
    "Conçois un système de recommandation pour une plateforme de vidéos avec 20 millions d'utilisateurs : collecte des signaux, entraînement hors ligne, service en ligne avec une latence p99 inférieure à 80 ms, et évaluation A/B. Justifie chaque choix.",
    "Notre API Node.js voit sa latence p99 passer de 120 ms à 2 s chaque jour vers 14 h, sans hausse du trafic. Propose une démarche d'investigation complète : métriques à regarder, hypothèses (GC, pool de connexions, tâches planifiées), et comment les départager.",
])
complex.add("proof", "fr", [
    "Démontre que racine de 2 est irrationnelle, puis généralise : pour quels entiers n la racine carrée de n est-elle irrationnelle ? Donne une preuve complète.",
    "Montre que toute suite réelle bornée admet une sous-suite convergente (Bolzano-Weierstrass) et explique le rôle de la complétude.",
])
complex.add("legal", "fr", [
    "Analyse les risques juridiques pour une start-up française qui utilise des données de santé pour entraîner un modèle d'IA : RGPD, hébergement HDS, consentement, et le futur règlement européen sur l'IA. Quelles mesures concrètes recommandes-tu ?",
])
complex.add("medical", "fr", [
    "Un patient de 67 ans, diabétique de type 2 sous metformine, présente une insuffisance rénale modérée (DFG 38). Discute l'adaptation du traitement antidiabétique, les alternatives possibles et les éléments de surveillance, en citant les recommandations actuelles.",
])
complex.add("long-form", "fr", [
    "Rédige un essai argumenté d'environ 1500 mots sur la question : « Le télétravail rend-il les entreprises plus ou moins innovantes ? » avec une introduction, trois parties et une conclusion nuancée.",
])
complex.add("algorithms", "fr", [
    "Explique l'algorithme de Dijkstra, prouve sa correction, puis montre pourquoi il échoue avec des poids négatifs et comment Bellman-Ford résout le problème, avec les complexités.",
])

# Spanish
simple.add("chit-chat", "es", [
    "¡Hola! ¿Qué tal?",
    "Gracias, eres muy amable.",
    "Cuéntame un dato curioso sobre los pulpos.",
])
simple.add("lookup", "es", [
    "¿Cuál es la capital de Argentina?",
    "¿Quién pintó el Guernica?",
    "¿Cuántos planetas hay en el sistema solar?",
    "¿En qué año llegó el hombre a la Luna?",
])
simple.add("translation", "es", [
    "Traduce al inglés: «¿Dónde está la estación de tren más cercana?»",
    "¿Cómo se dice «gracias» en japonés?",
])
simple.add("rewrite", "es", [
    "Corrige este texto: «Ayer fuimos a la playa y haci mucho calor, nos bañamos y comimos helado.»",
    "Resume en una frase: «La reunión de mañana se cancela porque el director está de viaje; la pasaremos al lunes a la misma hora.»",
])
simple.add("arithmetic", "es", [
    "¿Cuánto es el 30 % de 85?",
    "¿Cuántos segundos hay en una hora?",
])
standard.add("writing", "es", [
    "Escribe un correo breve para pedir un presupuesto de reforma de cocina a una empresa local.",
    "Escribe una descripción de 100 palabras para un piso en alquiler de dos habitaciones en Valencia.",
])
standard.add("explain", "es", [
    "Explícame qué es una hipoteca variable y en qué se diferencia de una fija, con un ejemplo.",
    "¿Cómo funciona un motor eléctrico? Explícalo de forma sencilla.",
])
standard.add("short-code", "es", [
    "Escribe una función en JavaScript que elimine los elementos duplicados de un array.",
])
complex.add("system-design", "es", [
    "Diseña la arquitectura de un sistema de reservas de vuelos que evite la sobreventa de asientos con millones de búsquedas por minuto. Explica el modelo de datos, el bloqueo de asientos, la consistencia entre regiones y qué pasa si falla el pago tras reservar.",
    "Tenemos un microservicio en Java que tras dos horas en producción lanza OutOfMemoryError. Los volcados de memoria muestran millones de objetos HashMap$Node. Describe cómo investigarías la fuga paso a paso y qué causas son las más probables.",
])
complex.add("proof", "es", [
    "Demuestra que la suma de los ángulos interiores de un triángulo en geometría euclídea es 180 grados, y explica por qué esto no se cumple en la esfera, con un ejemplo concreto.",
    "Demuestra por inducción que 1³ + 2³ + ... + n³ = (n(n+1)/2)², y da una interpretación geométrica de la identidad.",
])
complex.add("financial", "es", [
    "Analiza el balance y la cuenta de resultados de una empresa que crece un 40 % anual pero tiene flujo de caja libre negativo tres años seguidos. ¿Qué ratios mirarías, qué riesgos ves y en qué condiciones seguiría siendo una buena inversión?",
])
complex.add("medical", "es", [
    "Paciente de 45 años con dolor torácico atípico, troponina en el límite y ECG sin cambios claros. Plantea el diagnóstico diferencial, las pruebas que pedirías en orden y los criterios para el alta o el ingreso.",
])
complex.add("legal", "es", [
    "Compara el régimen de despido objetivo en España con el despido por causas económicas en Francia: requisitos, indemnizaciones y riesgos de nulidad. ¿Qué recomendarías a una empresa con plantilla en ambos países?",
])
complex.add("reasoning", "es", [
    "Tienes 8 bolas idénticas, una pesa más que las demás, y una balanza de dos platos. ¿Cuál es el mínimo de pesadas para encontrarla? Demuéstralo y generaliza a n bolas.",
])

# Portuguese
simple.add("lookup", "pt", [
    "Qual é a capital do Brasil?",
    "Quem escreveu Os Lusíadas?",
    "Quantos estados tem o Brasil?",
])
simple.add("chit-chat", "pt", [
    "Oi, tudo bem?",
    "Obrigado pela ajuda!",
])
simple.add("translation", "pt", [
    "Traduza para o inglês: 'Amanhã vou viajar para Lisboa a trabalho.'",
])
simple.add("rewrite", "pt", [
    "Reescreva de forma mais educada: 'Me manda o relatório agora.'",
])
standard.add("writing", "pt", [
    "Escreva um e-mail curto pedindo férias de duas semanas em julho ao meu gestor.",
])
standard.add("explain", "pt", [
    "Explique a diferença entre CDB e Tesouro Direto para quem está começando a investir.",
])
complex.add("system-design", "pt", [
    "Projete um sistema de pagamentos instantâneos (como o Pix) para um banco médio: arquitetura, garantias de idempotência, antifraude em tempo real com menos de 200 ms, e recuperação de desastres entre duas regiões.",
])
complex.add("debugging", "pt", [
    "Nosso cluster Elasticsearch fica com status amarelo toda noite durante o reindex e algumas buscas passam de 10 s. Temos 6 nós, 3 TB de dados e 1 réplica. Como você investigaria e quais mudanças proporia, com justificativas?",
])
complex.add("legal", "pt", [
    "Analise as obrigações de uma empresa brasileira de e-commerce sob a LGPD ao transferir dados de clientes para um provedor de nuvem nos EUA, comparando com o GDPR europeu, e proponha um plano de conformidade.",
])
complex.add("proof", "pt", [
    "Prove que existem infinitos números primos da forma 4k + 3 e explique por que a mesma técnica não funciona diretamente para 4k + 1.",
])

# Italian
simple.add("lookup", "it", [
    "Qual è la capitale della Sicilia?",
    "Chi ha scritto la Divina Commedia?",
    "Quanto è alto il Monte Bianco?",
])
simple.add("chit-chat", "it", [
    "Ciao! Come stai?",
    "Grazie mille, sei stato gentilissimo.",
])
simple.add("translation", "it", [
    "Traduci in inglese: 'Il treno per Milano parte alle otto.'",
])
simple.add("arithmetic", "it", [
    "Quanto fa 144 diviso 12?",
])
standard.add("writing", "it", [
    "Scrivi una breve email per chiedere un appuntamento dal commercialista per la dichiarazione dei redditi.",
])
standard.add("explain", "it", [
    "Spiegami come funziona il sistema elettorale italiano in modo semplice.",
])
complex.add("system-design", "it", [
    "Progetta un sistema di monitoraggio per 10.000 sensori industriali che inviano dati ogni secondo: ingestione, archiviazione per cinque anni, rilevamento di anomalie in tempo reale e gestione delle interruzioni di rete. Motiva le scelte tecnologiche.",
])
complex.add("medical", "it", [
    "Discuti la gestione di una paziente di 32 anni in gravidanza con ipertiroidismo: scelta del farmaco per trimestre, rischi per il feto, monitoraggio e gestione nel post-partum.",
])
complex.add("reasoning", "it", [
    "Cento prigionieri e una lampadina: descrivi la strategia che garantisce che a un certo punto qualcuno possa affermare con certezza che tutti sono entrati nella stanza, dimostra che funziona e stima il tempo atteso.",
])
complex.add("financial", "it", [
    "Valuta con un modello DCF una piccola azienda manifatturiera con ricavi di 12 milioni, margine EBITDA del 14% e debito di 5 milioni. Spiega le ipotesi su crescita, WACC e valore terminale e la sensibilità del risultato.",
])

# Chinese
simple.add("chit-chat", "zh", [
    "你好！今天过得怎么样？",
    "谢谢你的帮助！",
    "给我讲一个关于猫的笑话。",
])
simple.add("lookup", "zh", [
    "中国的首都是哪里？",
    "长城有多长？",
    "《红楼梦》的作者是谁？",
    "一年有多少天？",
])
simple.add("translation", "zh", [
    "把这句话翻译成英文：'我明天早上九点开会。'",
    "'Good luck' 用中文怎么说？",
])
simple.add("arithmetic", "zh", [
    "25乘以4等于多少？",
])
standard.add("explain", "zh", [
    "请解释一下什么是区块链，用通俗的语言，举一个例子。",
    "解释一下 HTTP 和 HTTPS 的区别。",
])
standard.add("short-code", "zh", [
    "用 Python 写一个函数，统计一段文字中每个词出现的次数。",
])
standard.add("writing", "zh", [
    "帮我写一封简短的请假邮件，说明下周三因为看病需要请一天假。",
])
complex.add("system-design", "zh", [
    "设计一个支持每秒十万次写入的分布式消息队列，要求消息至少投递一次、分区内有序、支持消费者组和故障自动转移。请说明存储结构、复制协议和领导者选举方案。",
    "我们的 Redis 集群在大促期间出现热点 key，单个分片 CPU 打满，接口超时。请系统地分析原因，给出短期止血和长期架构改进方案，并说明各自的权衡。",
])
complex.add("proof", "zh", [
    "证明：任意一个大于1的整数都可以唯一地分解为质数的乘积（算术基本定理），请给出完整的存在性和唯一性证明。",
    "证明根号3是无理数，并推广到任意非完全平方的正整数。",
])
complex.add("legal", "zh", [
    "比较中国《个人信息保护法》和欧盟 GDPR 在数据跨境传输方面的要求，分析一家同时在中国和欧洲运营的 SaaS 公司应如何设计合规方案。",
])
complex.add("algorithms", "zh", [
    "解释动态规划求解最长公共子序列的方法，证明其正确性，分析时间和空间复杂度，并说明如何把空间优化到 O(min(m, n)) 同时还能还原出子序列。",
])

# Japanese
simple.add("chit-chat", "ja", [
    "こんにちは！元気ですか？",
    "ありがとうございました！",
    "何か面白い話をして。",
])
simple.add("lookup", "ja", [
    "日本で一番高い山は何ですか？",
    "東京タワーの高さは？",
    "『源氏物語』を書いたのは誰ですか？",
])
simple.add("translation", "ja", [
    "英語に訳してください：「明日は雨が降るそうです。」",
    "「おはようございます」は英語で何と言いますか？",
])
simple.add("arithmetic", "ja", [
    "1200円の20%引きはいくらですか？",
])
standard.add("explain", "ja", [
    "機械学習と深層学習の違いを、初心者にもわかるように説明してください。",
    "円安が日本の家計に与える影響を簡単に説明してください。",
])
standard.add("writing", "ja", [
    "取引先に納期が3日遅れることを謝るメールを書いてください。丁寧な文体でお願いします。",
])
standard.add("short-code", "ja", [
    "JavaScriptで、配列の中から偶数だけを取り出す関数を書いてください。",
])
complex.add("system-design", "ja", [
    "全国に500店舗あるコンビニチェーンの在庫管理システムを設計してください。店舗がオフラインでも販売を続けられること、本部での需要予測、発注の自動化、データの整合性をどう保つかを詳しく説明してください。",
    "本番環境の PostgreSQL で、毎晩のバッチ処理中にデッドロックが頻発しています。テーブル構成とロックの取り方をどのように調べ、どんな順序で原因を切り分け、どう修正するか、具体的に説明してください。",
])
complex.add("proof", "ja", [
    "素数が無限に存在することを証明し、さらに 6k+5 の形の素数も無限に存在することを証明してください。",
])
complex.add("medical", "ja", [
    "70歳の男性、心房細動と慢性腎臓病（eGFR 35）があり、抗凝固療法を検討しています。ワルファリンとDOACの選択、用量調整、出血リスク評価について最新のガイドラインに基づいて論じてください。",
])
complex.add("financial", "ja", [
    "40歳の会社員が老後資金として65歳までに3000万円を準備したい場合、NISAとiDeCoをどう組み合わせるべきか、想定利回り、税制、リスクを踏まえて具体的な計画を立ててください。",
])

SEEDS = simple.seeds + standard.seeds + complex.seeds
