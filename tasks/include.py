"""INCLUDE — multilingual exam questions with regional knowledge (4 options), two settings.

Paper: Romanou et al. 2024, "INCLUDE: Evaluating Multilingual Language Understanding with
Regional Knowledge". Data: HF ``CohereForAI/include-base-44`` (config = the language's English
name, e.g. "North Macedonian"; split ``test``; ``question, option_a..option_d, answer`` (0–3),
``domain, subject, country, level, language, regional_feature``); Apache-2.0. 44 languages,
coded here by ISO 639-1 (``hub_configs`` maps code → config). Metric: accuracy; chance 0.25.

``include`` (headline): 0-shot native chain-of-thought, greedy. One user turn in the question's
language: instruction (think step by step, end with the line "<Answer>: X"), blank line,
question, blank line, options as "A. …" lines. ``system`` is None, so base models (plain
text) and chat templates without a system role get the same text. No stop strings (EOS only;
an earlier stop would cut the reasoning); at most 1,024 new tokens.
Extraction (:func:`extract`, NFKC-normalised text, so "：" and "Ｃ" read as ":" and "C"):
1. native: the last "<Answer>:" marker of the language (variants in ``also``; ``**`` bold,
   "(", "[" and "$" allowed around the letter, the letter may sit on the next line);
2. english: the same for "Answer:";
3. last_line: the last standalone capital A–D on the last non-empty line.
A marker followed by another letter (E), a word or nothing falls through to the next stage;
one naming several letters ("A und C", "A, C", "A或C") ends extraction with None. Letters are
capital Latin A–D only (a Cyrillic "В" may mean B or, in А/Б/В/Г numbering, C). Nothing
found: pred None, parsed False, acc 0.

``include_loglik``: lm-eval 0.4.13's ``include_base_44_<language>`` (a group of per-domain
subtasks in ``include/default/<Language>/``), 0-shot, continuations " A".." D", gold ``answer``.
The context is the subtask's description glued to ``doc_to_text`` (lm-eval renders the
description as a system message with an empty delimiter): "The following is multiple-choice
question about STEM.Was ist …\\nA. …\\nB. …\\nC. …\\n D. …\\nAnswer:". Known quirks, kept
for comparability with lm-eval's scores and pinned by tests:
* the stray space before "D." (the YAML folds "\\n" + line break + "D." into "\\n D.");
* the missing space after the description, and Hebrew's "Driving license" (lower-case l);
* lm-eval scores only rows whose ``domain`` has a subtask for that language; rows with any
  other domain are scored here too (their description uses the domain as written).
``lmeval_yaml`` is None: lm-eval's paths use the English name (``North Macedonian/
_include_base_44_north_macedonian.yaml``), which ``{lang}`` (a code) cannot fill.
"""

from __future__ import annotations

import re
import unicodedata

from glotbench.harness.core.errors import DataError
from glotbench.harness.core.records import (
    GenerationPrompt,
    GenerationResult,
    LoglikelihoodRequest,
    MultipleChoicePrompt,
    Sample,
)
from glotbench.harness.taskapi.spec import DataSource, Task
from glotbench.harness.taskapi.spec import literal as task_literal

MAX_NEW_TOKENS = 1024
LETTERS = "ABCD"
OPTIONS = ("option_a", "option_b", "option_c", "option_d")

# config: hub config (lm-eval's folder); answer: the word of the answer line, as in the
# instruction; also: other spellings accepted by extraction ("|"-separated).
LANGS: dict[str, dict[str, str]] = {
    "sq": {"config": "Albanian", "answer": "Përgjigja", "also": "Përgjigje|Pergjigja|Pergjigje",
           "instruction": 'Përgjigjuni pyetjes së mëposhtme me zgjedhje të shumëfishtë. Mendoni hap pas hapi dhe përfundoni përgjigjen me një rresht të formës "Përgjigja: X", ku X është një nga A, B, C ose D.'},
    "ar": {"config": "Arabic", "answer": "الإجابة", "also": "إجابة|الاجابة|اجابة|الجواب|جواب",
           "instruction": 'أجب عن السؤال التالي متعدد الخيارات. فكّر خطوة بخطوة، ثم اختم إجابتك بسطر بالصيغة "الإجابة: X"، حيث X هو أحد الأحرف A أو B أو C أو D.'},
    "hy": {"config": "Armenian", "answer": "Պատասխան", "also": "Պատասխանը",
           "instruction": 'Պատասխանեք հետևյալ հարցին։ Մտածեք քայլ առ քայլ և վերջում գրեք տող՝ "Պատասխան: X", որտեղ X-ը A, B, C կամ D է։'},
    "az": {"config": "Azerbaijani", "answer": "Cavab", "also": "",
           "instruction": 'Aşağıdakı test sualına cavab verin. Addım-addım düşünün və cavabınızı "Cavab: X" formatında bir sətirlə bitirin, burada X A, B, C və ya D-dir.'},
    "eu": {"config": "Basque", "answer": "Erantzuna", "also": "Erantzun",
           "instruction": 'Erantzun aukera anitzeko galdera honi. Pentsatu urratsez urrats, eta amaitu zure erantzuna "Erantzuna: X" formako lerro batekin, non X A, B, C edo D den.'},
    "be": {"config": "Belarusian", "answer": "Адказ", "also": "",
           "instruction": 'Адкажыце на наступнае пытанне з некалькімі варыянтамі адказу. Разважайце крок за крокам і завяршыце адказ радком выгляду "Адказ: X", дзе X — адна з літар A, B, C або D.'},
    "bn": {"config": "Bengali", "answer": "উত্তর", "also": "",
           "instruction": 'নিচের বহুনির্বাচনী প্রশ্নের উত্তর দিন। ধাপে ধাপে চিন্তা করুন এবং আপনার উত্তরের শেষে "উত্তর: X" আকারে একটি লাইন লিখুন, যেখানে X হলো A, B, C অথবা D-এর একটি।'},
    "bg": {"config": "Bulgarian", "answer": "Отговор", "also": "",
           "instruction": 'Отговорете на следния въпрос с множествен избор. Разсъждавайте стъпка по стъпка и завършете отговора си с ред във вида "Отговор: X", където X е една от буквите A, B, C или D.'},
    "zh": {"config": "Chinese", "answer": "答案", "also": "答",
           "instruction": "请回答下面的单项选择题。请逐步思考，并以“答案：X”格式的一行结束你的回答，其中 X 是 A、B、C、D 之一。"},
    "hr": {"config": "Croatian", "answer": "Odgovor", "also": "",
           "instruction": 'Odgovorite na sljedeće pitanje s višestrukim izborom. Razmišljajte korak po korak i završite odgovor retkom oblika "Odgovor: X", gdje je X jedno od slova A, B, C ili D.'},
    "nl": {"config": "Dutch", "answer": "Antwoord", "also": "",
           "instruction": 'Beantwoord de volgende meerkeuzevraag. Denk stap voor stap na en sluit je antwoord af met een regel in de vorm "Antwoord: X", waarbij X een van de letters A, B, C of D is.'},
    "et": {"config": "Estonian", "answer": "Vastus", "also": "",
           "instruction": 'Vasta järgmisele valikvastustega küsimusele. Mõtle samm-sammult ja lõpeta oma vastus reaga kujul "Vastus: X", kus X on üks tähtedest A, B, C või D.'},
    "fi": {"config": "Finnish", "answer": "Vastaus", "also": "",
           "instruction": 'Vastaa seuraavaan monivalintakysymykseen. Ajattele vaihe vaiheelta ja päätä vastauksesi riviin muodossa "Vastaus: X", jossa X on jokin kirjaimista A, B, C tai D.'},
    "fr": {"config": "French", "answer": "Réponse", "also": "Reponse",
           "instruction": 'Répondez à la question à choix multiples suivante. Réfléchissez étape par étape et terminez votre réponse par une ligne de la forme "Réponse : X", où X est l\'une des lettres A, B, C ou D.'},
    "ka": {"config": "Georgian", "answer": "პასუხი", "also": "",
           "instruction": 'უპასუხეთ შემდეგ კითხვას. იფიქრეთ ნაბიჯ-ნაბიჯ და დაასრულეთ თქვენი პასუხი სტრიქონით "პასუხი: X", სადაც X არის A, B, C ან D.'},
    "de": {"config": "German", "answer": "Antwort", "also": "",
           "instruction": 'Beantworte die folgende Multiple-Choice-Frage. Denke Schritt für Schritt nach und beende deine Antwort mit einer Zeile der Form "Antwort: X", wobei X einer der Buchstaben A, B, C oder D ist.'},
    "el": {"config": "Greek", "answer": "Απάντηση", "also": "Απαντηση",
           "instruction": 'Απαντήστε στην παρακάτω ερώτηση πολλαπλής επιλογής. Σκεφτείτε βήμα προς βήμα και ολοκληρώστε την απάντησή σας με μια γραμμή της μορφής "Απάντηση: X", όπου X είναι ένα από τα γράμματα A, B, C ή D.'},
    "he": {"config": "Hebrew", "answer": "תשובה", "also": "",
           "instruction": 'ענו על שאלת הרב-ברירה הבאה. חשבו שלב אחר שלב, וסיימו את תשובתכם בשורה בפורמט "תשובה: X", כאשר X היא אחת האותיות A, B, C או D.'},
    "hi": {"config": "Hindi", "answer": "उत्तर", "also": "जवाब",
           "instruction": 'निम्नलिखित बहुविकल्पीय प्रश्न का उत्तर दीजिए। चरण-दर-चरण सोचिए और अपने उत्तर के अंत में "उत्तर: X" के रूप में एक पंक्ति लिखिए, जहाँ X अक्षरों A, B, C या D में से एक है।'},
    "hu": {"config": "Hungarian", "answer": "Válasz", "also": "Valasz",
           "instruction": 'Válaszolj a következő feleletválasztós kérdésre! Gondolkodj lépésről lépésre, és a válaszod utolsó sora ez legyen: "Válasz: X", ahol X az A, B, C vagy D betűk egyike.'},
    "id": {"config": "Indonesian", "answer": "Jawaban", "also": "",
           "instruction": 'Jawablah pertanyaan pilihan ganda berikut. Berpikirlah langkah demi langkah, lalu akhiri jawaban Anda dengan baris berformat "Jawaban: X", dengan X salah satu dari A, B, C, atau D.'},
    "it": {"config": "Italian", "answer": "Risposta", "also": "",
           "instruction": 'Rispondi alla seguente domanda a scelta multipla. Ragiona passo dopo passo e termina la tua risposta con una riga nella forma "Risposta: X", dove X è una delle lettere A, B, C o D.'},
    "ja": {"config": "Japanese", "answer": "答え", "also": "解答|回答|正解|答",
           "instruction": "次の多肢選択問題に答えてください。段階的に考え、最後の行に「答え：X」の形式で答えを書いてください（X は A、B、C、D のいずれか）。"},
    "kk": {"config": "Kazakh", "answer": "Жауап", "also": "Жауабы",
           "instruction": 'Келесі тест сұрағына жауап беріңіз. Қадам-қадаммен ойланыңыз және жауабыңызды "Жауап: X" түріндегі жолмен аяқтаңыз, мұндағы X — A, B, C немесе D.'},
    "ko": {"config": "Korean", "answer": "정답", "also": "답변|답",
           "instruction": '다음 객관식 문제에 답하세요. 단계별로 생각한 뒤, 마지막 줄에 "정답: X" 형식으로 답을 쓰세요. 여기서 X는 A, B, C, D 중 하나입니다.'},
    "lt": {"config": "Lithuanian", "answer": "Atsakymas", "also": "",
           "instruction": 'Atsakykite į šį klausimą su keliais atsakymų variantais. Mąstykite žingsnis po žingsnio ir užbaikite atsakymą eilute "Atsakymas: X", kur X yra viena iš raidžių A, B, C arba D.'},
    "ms": {"config": "Malay", "answer": "Jawapan", "also": "Jawaban",
           "instruction": 'Jawab soalan aneka pilihan berikut. Fikir langkah demi langkah, kemudian akhiri jawapan anda dengan baris dalam bentuk "Jawapan: X", dengan X ialah salah satu daripada A, B, C atau D.'},
    "ml": {"config": "Malayalam", "answer": "ഉത്തരം", "also": "",
           "instruction": 'താഴെ കൊടുത്തിരിക്കുന്ന ചോദ്യത്തിന് ഉത്തരം നൽകുക. ഘട്ടം ഘട്ടമായി ചിന്തിക്കുക, നിങ്ങളുടെ ഉത്തരം "ഉത്തരം: X" എന്ന വരിയോടെ അവസാനിപ്പിക്കുക; ഇവിടെ X എന്നത് A, B, C അല്ലെങ്കിൽ D ആണ്.'},
    "ne": {"config": "Nepali", "answer": "उत्तर", "also": "",
           "instruction": 'तलको बहुविकल्पीय प्रश्नको उत्तर दिनुहोस्। चरणबद्ध रूपमा सोच्नुहोस् र आफ्नो उत्तरको अन्तमा "उत्तर: X" ढाँचाको एउटा पङ्क्ति लेख्नुहोस्, जहाँ X भनेको A, B, C वा D मध्ये एक हो।'},
    "mk": {"config": "North Macedonian", "answer": "Одговор", "also": "",
           "instruction": 'Одговорете на следното прашање со повеќе понудени одговори. Размислувајте чекор по чекор и завршете го одговорот со ред во облик "Одговор: X", каде што X е една од буквите A, B, C или D.'},
    "fa": {"config": "Persian", "answer": "پاسخ", "also": "جواب",
           "instruction": 'به پرسش چندگزینه‌ای زیر پاسخ دهید. گام به گام فکر کنید و پاسخ خود را با یک خط به شکل "پاسخ: X" به پایان برسانید، که در آن X یکی از حروف A، B، C یا D است.'},
    "pl": {"config": "Polish", "answer": "Odpowiedź", "also": "Odpowiedz",
           "instruction": 'Odpowiedz na poniższe pytanie wielokrotnego wyboru. Rozumuj krok po kroku i zakończ odpowiedź wierszem w postaci "Odpowiedź: X", gdzie X to jedna z liter A, B, C lub D.'},
    "pt": {"config": "Portuguese", "answer": "Resposta", "also": "",
           "instruction": 'Responda à seguinte pergunta de múltipla escolha. Pense passo a passo e termine a sua resposta com uma linha no formato "Resposta: X", em que X é uma das letras A, B, C ou D.'},
    "ru": {"config": "Russian", "answer": "Ответ", "also": "",
           "instruction": 'Ответьте на следующий вопрос с несколькими вариантами ответа. Рассуждайте шаг за шагом и завершите ответ строкой вида "Ответ: X", где X — одна из букв A, B, C или D.'},
    "sr": {"config": "Serbian", "answer": "Одговор", "also": "Odgovor",
           "instruction": 'Одговорите на следеће питање са вишеструким избором. Размишљајте корак по корак и завршите одговор редом облика "Одговор: X", где је X једно од слова A, B, C или D.'},
    "es": {"config": "Spanish", "answer": "Respuesta", "also": "",
           "instruction": 'Responde a la siguiente pregunta de opción múltiple. Piensa paso a paso y termina tu respuesta con una línea de la forma "Respuesta: X", donde X es una de las letras A, B, C o D.'},
    "tl": {"config": "Tagalog", "answer": "Sagot", "also": "",
           "instruction": 'Sagutin ang sumusunod na tanong na may maraming pagpipilian. Mag-isip nang hakbang-hakbang at tapusin ang iyong sagot sa isang linya na "Sagot: X", kung saan ang X ay isa sa A, B, C, o D.'},
    "ta": {"config": "Tamil", "answer": "பதில்", "also": "விடை",
           "instruction": 'பின்வரும் கேள்விக்குப் பதிலளிக்கவும். படிப்படியாகச் சிந்தித்து, உங்கள் பதிலை "பதில்: X" என்ற வரியுடன் முடிக்கவும்; இங்கு X என்பது A, B, C அல்லது D.'},
    "te": {"config": "Telugu", "answer": "సమాధానం", "also": "జవాబు",
           "instruction": 'కింది ప్రశ్నకు సమాధానం ఇవ్వండి. దశలవారీగా ఆలోచించి, మీ సమాధానాన్ని "సమాధానం: X" అనే పంక్తితో ముగించండి; ఇక్కడ X అనేది A, B, C లేదా D.'},
    "tr": {"config": "Turkish", "answer": "Cevap", "also": "Yanıt|Yanit",
           "instruction": 'Aşağıdaki çoktan seçmeli soruyu cevaplayın. Adım adım düşünün ve cevabınızı "Cevap: X" biçiminde bir satırla bitirin; burada X, A, B, C veya D harflerinden biridir.'},
    "uk": {"config": "Ukrainian", "answer": "Відповідь", "also": "",
           "instruction": 'Дайте відповідь на наступне запитання з кількома варіантами відповіді. Міркуйте крок за кроком і завершіть відповідь рядком у форматі "Відповідь: X", де X — одна з літер A, B, C або D.'},
    "ur": {"config": "Urdu", "answer": "جواب", "also": "",
           "instruction": 'درج ذیل کثیر انتخابی سوال کا جواب دیں۔ قدم بہ قدم سوچیں اور اپنے جواب کے آخر میں "جواب: X" کی شکل میں ایک سطر لکھیں، جہاں X حروف A، B، C یا D میں سے ایک ہے۔'},
    "uz": {"config": "Uzbek", "answer": "Javob", "also": "Жавоб",
           "instruction": 'Quyidagi test savoliga javob bering. Qadamma-qadam fikrlang va javobingizni "Javob: X" koʻrinishidagi qator bilan yakunlang, bunda X — A, B, C yoki D harflaridan biri.'},
    "vi": {"config": "Vietnamese", "answer": "Đáp án", "also": "Câu trả lời|Trả lời",
           "instruction": 'Hãy trả lời câu hỏi trắc nghiệm sau. Suy nghĩ từng bước một và kết thúc câu trả lời bằng một dòng có dạng "Đáp án: X", trong đó X là một trong các chữ cái A, B, C hoặc D.'},
}

# lm-eval's subtask description; Hebrew's driving-licence subtask spells it "Driving license".
DESCRIPTION = "The following is multiple-choice question about {domain}."
DESCRIPTION_DOMAIN = {("he", "Driving License"): "Driving license"}


def literal(lang: str, key: str) -> str:
    return task_literal(LANGS, "include", lang, key)


def gold(sample: Sample) -> int:
    answer = sample.fields["answer"]
    if isinstance(answer, bool) or str(answer).strip() not in ("0", "1", "2", "3"):
        raise DataError(f"include/{sample.lang} row {sample.doc_id} has answer {answer!r}",
                        "answers are 0, 1, 2 or 3 (the index of the right option)")
    return int(answer)


def render_cot(sample: Sample) -> GenerationPrompt:
    row = sample.fields
    options = "\n".join(f"{x}. {str(row[f]).strip()}" for x, f in zip(LETTERS, OPTIONS))
    question = literal(sample.lang, "instruction") + "\n\n" + str(row["question"]).strip() + "\n\n" + options
    return GenerationPrompt(question, LETTERS[gold(sample)], system=None, stop=(), max_new_tokens=MAX_NEW_TOKENS)


def render_loglik(sample: Sample) -> MultipleChoicePrompt:
    row, lang = sample.fields, sample.lang
    literal(lang, "config")  # an unknown language fails here, naming it
    domain = DESCRIPTION_DOMAIN.get((lang, row["domain"]), row["domain"])
    # lm-eval's doc_to_text verbatim, stray space before "D." included (see the docstring).
    context = (DESCRIPTION.format(domain=domain) + row["question"].strip()
               + f"\nA. {row['option_a']}\nB. {row['option_b']}\nC. {row['option_c']}\n D. {row['option_d']}\nAnswer:")
    return MultipleChoicePrompt(tuple(LoglikelihoodRequest(context, " " + x) for x in LETTERS), gold(sample))


# After NFKC: ASCII colon (also full-width "："), Armenian "։" typed as a colon, Bengali "উত্তরঃ".
COLON = "[:։ঃ]"
OPEN = r"[\s*_$(\[\u200e\u200f]*"  # bold, brackets, LaTeX $, RTL marks, line breaks
LATIN = "A-Za-z0-9\u00c0-\u024f"  # a letter touching these is part of a word; CJK may touch it
LETTER = re.compile(OPEN + rf"([A-Z])(?![{LATIN}])")
SEVERAL = re.compile(rf"[\s*_$)\]]*(?:[,/&+;、]|[和或与及]|\s[^\W\d_]{{1,5}}\s)[\s*_$(\[]*[A-D](?![{LATIN}])")
STANDALONE = re.compile(rf"(?<![{LATIN}])([A-D])(?![{LATIN}])")


def _marker(words: list[str]) -> re.Pattern:
    alternatives = "|".join(re.escape(unicodedata.normalize("NFKC", w)) for w in words if w)
    return re.compile(rf"(?i:{alternatives})[\s*_]*{COLON}")


MARKERS = {lang: _marker([v["answer"], *v["also"].split("|")]) for lang, v in LANGS.items()}
ENGLISH = _marker(["Answer"])


def _after_marker(text: str, marker: re.Pattern) -> str | None:
    """The letter after the last marker; "" when it names several letters; None otherwise."""
    found = list(marker.finditer(text))
    if not found:
        return None
    m = LETTER.match(text, found[-1].end())
    if m is None or m.group(1) not in LETTERS:
        return None
    return "" if SEVERAL.match(text, m.end()) else m.group(1)


def extract(text: str, lang: str) -> tuple[str | None, str | None]:
    """(letter or None, deciding stage: "native", "english", "last_line" or None)."""
    literal(lang, "answer")
    text = unicodedata.normalize("NFKC", text)
    for stage, marker in (("native", MARKERS[lang]), ("english", ENGLISH)):
        found = _after_marker(text, marker)
        if found is not None:
            return found or None, stage
    lines = [line for line in text.splitlines() if line.strip()]
    letters = STANDALONE.findall(lines[-1]) if lines else []
    return (letters[-1], "last_line") if letters else (None, None)


def score(prompt: GenerationPrompt, result: GenerationResult, lang: str) -> dict:
    pred, _ = extract(result.text, lang)
    return {"acc": float(pred == prompt.target), "pred": pred, "parsed": pred is not None}


def answer_as_text(answer: str, lang: str) -> str:
    """A response in the form the instruction asks for."""
    return f"Step by step: the second option fits best.\n{literal(lang, 'answer')}: {answer}"


# "domain" is named by lm-eval's description (log-likelihood prompt) and splits the results.
DATA = DataSource(hub_id="CohereForAI/include-base-44", split="test", local="include/{lang}.jsonl",
                  fields=("question", *OPTIONS, "answer", "domain"), licence="Apache-2.0",
                  hub_configs={code: v["config"] for code, v in LANGS.items()})

TASK_COT = Task(
    name="include", version="1.0", title="INCLUDE (0-shot native chain-of-thought, accuracy)",
    languages=tuple(LANGS), data=DATA, chance=0.25, render=render_cot, lmeval_yaml=None,
    output_type="generate", metrics=("acc",), scorer=score, answer_as_text=answer_as_text,
    breakdowns=("domain", "regional_feature"),
)

TASK_LOGLIK = Task(
    name="include_loglik", version="1.0", title="INCLUDE (0-shot, log-likelihood accuracy, as lm-eval)",
    languages=tuple(LANGS), data=DATA, chance=0.25, render=render_loglik, lmeval_yaml=None,
    breakdowns=("domain", "regional_feature"),  # lmeval_yaml: see the module docstring
)
