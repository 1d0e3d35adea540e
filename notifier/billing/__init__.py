"""The billing rules: the bank calendar, an invoice's dates, contact hours, documents (CPF/CNPJ,
e-mail, phone), the Pix code, the models, and the rules that say which notice is due for whom
today. Pure: no I/O, no clock."""
