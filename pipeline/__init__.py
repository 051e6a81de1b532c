"""Pure-Python pipeline logic shared by the Lambdas, the Glue jobs and the tests: the data contract,
where objects live, and the quality gate. No AWS calls and no heavy dependencies here."""
