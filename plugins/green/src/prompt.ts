/**
 * The judge's prompt. GREEN's judge models (GREEN-RadLlama2-7b, GREEN-MM-RadLLaMA-7b) were fine-tuned on
 * one fixed instruction, so it is reproduced here exactly as green_score builds it (Stanford-AIMI/GREEN,
 * green_score/utils.py `make_prompt`): a reworded prompt would be a different metric. Each report is cut
 * to its first `maxWords` words first (green_score: 300).
 */
const TEMPLATE = "Objective: Evaluate the accuracy of a candidate radiology report in comparison to a reference radiology report composed by expert radiologists.\n\n    Process Overview: You will be presented with:\n\n    1. The criteria for making a judgment.\n    2. The reference radiology report.\n    3. The candidate radiology report.\n    4. The desired format for your assessment.\n\n    1. Criteria for Judgment:\n\n    For each candidate report, determine:\n\n    The count of clinically significant errors.\n    The count of clinically insignificant errors.\n\n    Errors can fall into one of these categories:\n\n    a) False report of a finding in the candidate.\n    b) Missing a finding present in the reference.\n    c) Misidentification of a finding's anatomic location/position.\n    d) Misassessment of the severity of a finding.\n    e) Mentioning a comparison that isn't in the reference.\n    f) Omitting a comparison detailing a change from a prior study.\n    Note: Concentrate on the clinical findings rather than the report's writing style. Evaluate only the findings that appear in both reports.\n\n    2. Reference Report:\n    @@REFERENCE@@\n\n    3. Candidate Report:\n    @@CANDIDATE@@\n\n    4. Reporting Your Assessment:\n\n    Follow this specific format for your output, even if no errors are found:\n    ```\n    [Explanation]:\n    <Explanation>\n\n    [Clinically Significant Errors]:\n    (a) <Error Type>: <The number of errors>. <Error 1>; <Error 2>; ...; <Error n>\n    ....\n    (f) <Error Type>: <The number of errors>. <Error 1>; <Error 2>; ...; <Error n>\n\n    [Clinically Insignificant Errors]:\n    (a) <Error Type>: <The number of errors>. <Error 1>; <Error 2>; ...; <Error n>\n    ....\n    (f) <Error Type>: <The number of errors>. <Error 1>; <Error 2>; ...; <Error n>\n\n    [Matched Findings]:\n    <The number of matched findings>. <Finding 1>; <Finding 2>; ...; <Finding n>\n    ```\n";

export function truncateWords(text: string, maxWords: number): string {
  return text.split(/\s+/).filter((w) => w.length > 0).slice(0, maxWords).join(' ');
}

export function greenPrompt(reference: string, candidate: string, maxWords = 300): string {
  return TEMPLATE.replace('@@REFERENCE@@', () => truncateWords(reference, maxWords)).replace('@@CANDIDATE@@', () => truncateWords(candidate, maxWords));
}
