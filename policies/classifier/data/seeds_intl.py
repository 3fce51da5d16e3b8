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

# More seeds, all languages
simple.add("formatting", "de", [
    "Mach aus dieser Liste eine Tabelle mit den Spalten Name und Alter: Anna 34, Jonas 28, Lea 41.",
    "Sortiere alphabetisch: Birne, Apfel, Zitrone, Banane, Kirsche.",
])
simple.add("summary", "de", [
    "Fass diesen Absatz in einem Satz zusammen: 'Die Stadtbibliothek bleibt vom 1. bis 14. August wegen Renovierungsarbeiten geschlossen. Ausgeliehene Medien können in dieser Zeit am Rückgabeautomaten am Haupteingang abgegeben werden. Mahngebühren fallen während der Schließung nicht an.'",
])
simple.add("definition", "fr", [
    "Que veut dire le mot « procrastiner » ?",
    "C'est quoi une photosynthèse, en une phrase ?",
])
simple.add("formatting", "fr", [
    "Mets cette liste en ordre alphabétique : poire, ananas, fraise, cerise, abricot.",
])
simple.add("summary", "fr", [
    "Résume ce message en une phrase : « Bonjour à tous, la réunion d'équipe de jeudi est déplacée à vendredi 10 h, même salle. Merci de préparer un point rapide sur vos projets en cours. Bonne journée, Claire »",
])
simple.add("definition", "es", [
    "¿Qué significa «sobremesa»?",
    "Define «algoritmo» en una frase sencilla.",
])
simple.add("formatting", "es", [
    "Convierte esto en una lista con viñetas: leche, huevos, pan, tomates y aceite de oliva.",
])
simple.add("arithmetic", "pt", [
    "Quanto é 18% de 350?",
    "Quantos segundos tem uma hora e meia?",
])
simple.add("rewrite", "it", [
    "Rendi più formale questa frase: 'Ci vediamo domani per parlare del progetto, ok?'",
    "Correggi gli errori: 'Ieri sono andato al mare con i miei amici e abbiamo mangiato un gelato bonissimo.'",
])
simple.add("rewrite", "zh", [
    "把这句话改得更礼貌一些：'把报告今天下班前发给我。'",
    "帮我改正这句话里的错别字：'我明天要去图书管借几本书。'",
])
simple.add("definition", "ja", [
    "「忖度」とはどういう意味ですか？",
    "「サブスク」を一言で説明してください。",
])
simple.add("summary", "ja", [
    "次の文を一文で要約してください：「明日から三日間、システムメンテナンスのため社内ポータルにアクセスできません。緊急の申請は総務部までメールでご連絡ください。」",
])
simple.add("lookup", "pt", [
    "Qual é o maior rio do Brasil?",
])
simple.add("chit-chat", "es", [
    "¡Buenas noches! Me voy a dormir, hasta mañana.",
])

complex.add("debugging", "de", [
    "Unser Java-Dienst (Spring Boot, 16 GB Heap) bekommt etwa einmal pro Tag GC-Pausen von 8 bis 12 Sekunden, immer zwischen 2 und 4 Uhr nachts. Der Heap-Verbrauch sieht im Monitoring unauffällig aus. Welche Ursachen kommen in Frage, welche Daten sammelst du, um sie zu unterscheiden, und wie würdest du jede Hypothese überprüfen?",
])
complex.add("medical", "de", [
    "Eine 72-jährige Patientin mit Vorhofflimmern, Niereninsuffizienz (eGFR 28) und einem Sturz vor zwei Monaten: Wäge die Antikoagulation mit Apixaban gegen die Alternativen ab. Welche Scores und Dosisanpassungen spielen eine Rolle, und was sollte mit ihr und den Angehörigen besprochen werden?",
])
complex.add("long-form", "de", [
    "Schreib einen Essay von etwa 1500 Wörtern über die Frage, ob die Energiewende in Deutschland ohne neue Gaskraftwerke gelingen kann. Stelle die wichtigsten Argumente beider Seiten dar, mit Zahlen zu Speicher, Netzausbau und Versorgungssicherheit, und komm zu einem begründeten Urteil.",
])
complex.add("financial", "fr", [
    "Je dispose de 200 000 € à 45 ans : assurance-vie en unités de compte, PEA, ou remboursement anticipé de mon prêt immobilier à 1,4 % ? Compare les trois options sur 20 ans en tenant compte de la fiscalité française, du risque et de la liquidité, et propose une répartition argumentée.",
])
complex.add("reasoning", "fr", [
    "Trois amis, Léa, Marc et Sofia, mentent toujours ou disent toujours la vérité. Léa dit : « Marc ment. » Marc dit : « Sofia et Léa sont du même type. » Sofia dit : « Au moins l'un de nous deux, Marc et moi, dit la vérité. » Qui ment et qui dit la vérité ? Justifie chaque étape et vérifie qu'il n'y a qu'une seule solution.",
])
complex.add("debugging", "fr", [
    "Notre application React Native plante au démarrage uniquement sur certains Android 12 (Samsung surtout), sans trace utile dans Crashlytics. En local tout fonctionne. Propose une démarche d'investigation complète : hypothèses, outils, comment reproduire, et comment isoler la cause.",
])
complex.add("code-review", "fr", [
    "Fais une revue de ce code Python et explique les problèmes de concurrence :\n\n```python\nimport threading\ncache = {}\n\ndef get_user(uid, db):\n    if uid not in cache:\n        cache[uid] = db.fetch(uid)\n    return cache[uid]\n\ndef invalidate(uid):\n    if uid in cache:\n        del cache[uid]\n```\n\nLe code est appelé par 32 threads. Quels scénarios d'entrelacement posent problème, et comment le corriger sans sérialiser tous les accès ?",
])
complex.add("algorithms", "es", [
    "Diseña un algoritmo para encontrar la mediana de un flujo de números que llegan uno a uno, con inserción en O(log n) y consulta en O(1). Después, adáptalo para una ventana deslizante de los últimos k elementos y demuestra la complejidad de cada operación.",
])
complex.add("debugging", "es", [
    "Tenemos una API en Go detrás de un balanceador; tras pasar de HTTP/1.1 a HTTP/2 aparecen errores 502 intermitentes (un 0,5 %) solo con clientes móviles. Los logs del servicio no muestran errores. ¿Cómo investigarías el problema paso a paso y qué hipótesis priorizarías?",
])
complex.add("long-form", "es", [
    "Escribe un artículo de unas 1.500 palabras sobre el impacto del turismo masivo en ciudades como Barcelona y Málaga: vivienda, empleo, comercio local y medio ambiente. Incluye datos, contraargumentos y propuestas de política pública concretas.",
])
complex.add("reasoning", "pt", [
    "Uma empresa tem 5 projetos e 3 equipes; cada equipe só pode fazer projetos consecutivos, o projeto 2 depende do 1, e o 4 não pode ser feito pela mesma equipe do 3. Quantas atribuições válidas existem? Explique o raciocínio passo a passo e verifique o resultado de outra forma.",
])
complex.add("financial", "pt", [
    "Tenho 38 anos, ganho R$ 15 mil por mês e pago aluguel. Vale mais a pena financiar um apartamento de R$ 600 mil com juros de 10,5% ao ano ou continuar alugando e investir a diferença no Tesouro IPCA+? Faça uma simulação de 20 anos com premissas explícitas e analise a sensibilidade aos juros e à inflação.",
])
complex.add("medical", "pt", [
    "Paciente de 55 anos, diabético tipo 2, HbA1c de 9,2% com metformina em dose máxima, IMC 34 e doença renal crônica estágio 3a. Quais seriam as opções de intensificação do tratamento e como escolher entre iSGLT2, agonistas de GLP-1 e insulina? Justifique com base nos benefícios cardiorrenais e nos riscos.",
])
complex.add("legal", "it", [
    "Un dipendente viene licenziato per giusta causa dopo aver pubblicato su Facebook critiche al datore di lavoro. Analizza il caso secondo il diritto italiano: proporzionalità, libertà di critica, giurisprudenza della Cassazione, e quali tutele spettano al lavoratore a seconda delle dimensioni dell'azienda.",
])
complex.add("proof", "it", [
    "Dimostra che la radice quadrata di 2 è irrazionale e poi generalizza: dimostra che la radice n-esima di un intero positivo è razionale solo se l'intero è una potenza n-esima perfetta.",
])
complex.add("debugging", "it", [
    "Il nostro job Spark che processa 2 TB al giorno è passato da 40 minuti a 3 ore senza modifiche al codice. Nella UI vediamo alcuni task che durano 50 volte la mediana. Come procederesti per trovare la causa e quali soluzioni valuteresti per ciascuna ipotesi?",
])
complex.add("medical", "zh", [
    "一位68岁男性，有高血压和慢性阻塞性肺病，最近两周出现下肢水肿和夜间呼吸困难。请列出鉴别诊断，说明需要做哪些检查来区分，并讨论在确诊心力衰竭后，如何在用药上兼顾他的肺部疾病。",
])
complex.add("debugging", "zh", [
    "我们的Redis集群在每天上午10点左右出现延迟尖峰，P99从2毫秒升到300毫秒，持续几分钟。CPU和内存都不高。请给出系统的排查思路：可能的原因、需要收集的指标和命令，以及如何逐一验证。",
])
complex.add("long-form", "zh", [
    "写一篇约2000字的文章，讨论人工智能对中国制造业就业的影响。请分析不同技能层次的工人受到的影响，引用可能的数据来源，提出反方观点，并给出具体的政策建议。",
])
complex.add("financial", "zh", [
    "一家年营收5亿元的制造企业计划用3亿元收购一家竞争对手，其中一半用银行贷款。请从估值方法、协同效应、资本结构和整合风险四个方面分析这笔交易，并说明在什么条件下这笔收购会毁灭股东价值。",
])
complex.add("debugging", "ja", [
    "本番環境のPostgreSQLで、特定のクエリだけが時々数十秒かかるようになりました。実行計画は普段は問題ありません。考えられる原因（統計情報、パラメータ化クエリのプラン、ロック、autovacuumなど）を挙げ、それぞれをどう切り分けるか手順を示してください。",
])
complex.add("legal", "ja", [
    "フリーランスのエンジニアが業務委託契約で開発したソフトウェアの著作権は誰に帰属しますか。契約書に定めがない場合と、譲渡条項がある場合とで、著作権法第27条・第28条や著作者人格権の扱いも含めて分析してください。",
])
complex.add("reasoning", "ja", [
    "AからEの5人が円卓に座ります。AはBの隣ではなく、CはDの右隣、EはAの正面に近い位置（隣でない）に座ります。条件を満たす座り方は回転を同一視して何通りありますか。考え方を段階的に説明し、数え漏れがないことを確認してください。",
])
complex.add("algorithms", "de", [
    "Entwirf eine Datenstruktur, die Intervalle einfügt und löscht und für einen Punkt alle überlappenden Intervalle findet, mit O(log n + k) pro Abfrage. Begründe die Korrektheit und vergleiche mit einem Segmentbaum.",
])
complex.add("system-design", "it", [
    "Progetta un sistema di notifiche push per un'app con 20 milioni di utenti: invii programmati, preferenze per utente, limiti di frequenza, retry e deduplicazione. Descrivi componenti, flusso dei dati, modello di consegna e come gestisci i picchi durante eventi sportivi.",
])
complex.add("legal", "es", [
    "Una startup española recoge datos de geolocalización de sus usuarios para publicidad. Analiza su situación según el RGPD y la LOPDGDD: base jurídica, consentimiento, evaluación de impacto, transferencias a EE. UU. y sanciones posibles. ¿Qué cambios concretos le recomendarías?",
])
complex.add("system-design", "pt", [
    "Projete o sistema de pagamentos instantâneos (Pix) de uma fintech com 5 milhões de clientes: garantia de idempotência, conciliação com o Banco Central, prevenção de fraude em tempo real e o que acontece se a conexão com o SPI cair no meio de uma transação.",
])

complex.add("proof", "es", [
    "Demuestra que e es irracional usando su desarrollo en serie, y explica por qué el mismo argumento no basta para probar que π es irracional.",
])
complex.add("algorithms", "ja", [
    "重み付き有向グラフで、負の辺を含むが負の閉路はない場合に全点対最短路を求める効率的な方法を説明してください。Johnsonのアルゴリズムの再重み付けがなぜ正しいのかを証明し、Floyd–Warshallと計算量を比較してください。",
])
simple.add("translation", "fr", [
    "Traduis en anglais : « Je suis désolé, je ne pourrai pas venir ce soir. »",
])

SEEDS = simple.seeds + standard.seeds + complex.seeds
