"""placeholder"""
def start_exam(app, exam_id, driver):
    app.notify("exams: not yet")
